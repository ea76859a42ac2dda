"""The ``limit_http`` reference: a bare FastAPI POST endpoint that ignores its body.

Run under the same uvicorn settings and worker count as the Rapport server, loaded with the
same tool and the same requests, it is the ceiling the HTTP stack puts on any endpoint.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response

app = FastAPI()


@app.post("/v1/connections/{cid}/messages", status_code=201)
async def accept(cid: str) -> Response:
    """Answer 201 with a small JSON body, like a send would, without reading the request."""
    return Response(b'{"ok":true}', status_code=201, media_type="application/json")


@app.get("/healthz")
async def healthz() -> Response:
    """Liveness, like the real server's."""
    return Response(b'{"status":"ok"}', media_type="application/json")
