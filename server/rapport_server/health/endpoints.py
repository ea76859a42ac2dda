"""Liveness and version."""

from __future__ import annotations

import rapport_protocol
from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from .. import __version__
from ..web import ServicesDep

router = APIRouter(tags=["meta"])


class Health(BaseModel):
    status: str
    database: str


class Version(BaseModel):
    server_version: str
    protocol_version: str
    api: str = "v1"


@router.get(
    "/healthz",
    summary="Liveness and database check",
    response_model=Health,
    responses={503: {"description": "database unreachable"}},
)
async def healthz(svc: ServicesDep) -> Health:
    """``ok`` when the server runs and its database answers."""
    from ..domain import Unavailable

    try:
        async with svc.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise Unavailable("database unreachable", headers={"Retry-After": "1"}) from exc
    return Health(status="ok", database=svc.engine.dialect.name)


@router.get("/v1/", summary="Server and protocol version", response_model=Version)
async def version() -> Version:
    """The versions this server speaks."""
    return Version(server_version=__version__, protocol_version=rapport_protocol.PROTOCOL_VERSION)
