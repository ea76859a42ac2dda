"""The person's web app ("My connections"), served at ``/app``.

Static files only: the browser holds the person's key, signs protocol objects itself and
talks to the public ``/v1`` API like any other client. The server just hands out the files,
with headers that keep the key's page locked down (a strict Content-Security-Policy: only
this origin's scripts, no inline code, no framing) and invitation tokens out of referrers.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

STATIC_DIR = Path(__file__).parent / "static"
MOUNT_PATH = "/app"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class _SecuredStatic:
    """Static files with the app's security headers and revalidation on every load
    (the files are small; a stale script after an upgrade would sign with old rules)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))  # type: ignore[call-overload]
                for name, value in SECURITY_HEADERS.items():
                    headers.append((name.lower().encode(), value.encode()))
                headers.append((b"cache-control", b"no-cache"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)  # type: ignore[arg-type]


def _index() -> Response:
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )


def mount_webapp(app: FastAPI) -> None:
    """Serve the web app at ``/app`` (also ``/app/invite/<token>``, the invitation links
    the server hands out). The routes stay out of the OpenAPI document."""

    @app.get(MOUNT_PATH, include_in_schema=False)
    async def app_root() -> Response:
        return RedirectResponse(f"{MOUNT_PATH}/", status_code=308)

    @app.get(f"{MOUNT_PATH}/", include_in_schema=False)
    async def app_index() -> Response:
        return _index()

    @app.get(MOUNT_PATH + "/invite/{token}", include_in_schema=False)
    async def app_invite(token: str) -> Response:
        # The page reads the token from its own URL; the server does not look it up here.
        return _index()

    app.mount(
        f"{MOUNT_PATH}/static",
        _SecuredStatic(StaticFiles(directory=STATIC_DIR)),
        name="webapp-static",
    )


__all__ = ["MOUNT_PATH", "STATIC_DIR", "mount_webapp"]
