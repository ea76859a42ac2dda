"""Parties: register a key, read yourself, rotate your key."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from ..auth.tokens import verify_assertion
from ..domain import NotFound
from ..schemas import Party
from ..web import ServicesDep, SessionDep, SubjectDep, run_write
from ..writes import UnitContext
from . import service

router = APIRouter(prefix="/v1/parties", tags=["parties"])


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["business", "person"]
    display_name: Annotated[str, Field(min_length=1, max_length=200)]
    profile_url: HttpUrl | None = None
    logo_url: HttpUrl | None = None
    assertion: Annotated[
        str,
        Field(
            max_length=4096,
            description=(
                "JWT signed by the key being registered: iss = sub = its did:key, "
                "aud = <public_url>/v1/parties, short-lived, unique jti."
            ),
        ),
    ]


@router.post(
    "",
    summary="Register a party",
    status_code=201,
    response_model=Party,
    responses={
        400: {"description": "invalid_grant"},
        409: {"description": "already_registered / key_retired"},
    },
)
async def register(body: Registration, request: Request, svc: ServicesDep) -> Response:
    """Register a business or person by its Ed25519 did:key, proving possession of the key.
    The server never sees a private key."""
    settings = svc.settings
    proof = verify_assertion(
        body.assertion,
        audience=settings.public_url.rstrip("/") + "/v1/parties",
        now=svc.clock(),
        max_age=settings.assertion_max_age,
        skew=settings.clock_skew_seconds,
    )

    async def unit(ctx: UnitContext) -> Party:
        row = await service.register(
            ctx,
            proof,
            kind=body.kind,
            display_name=body.display_name,
            profile_url=str(body.profile_url) if body.profile_url else None,
            logo_url=str(body.logo_url) if body.logo_url else None,
            now=svc.clock(),
        )
        return Party.of(row)

    return await run_write(request, svc, None, unit, status_code=201)


@router.get(
    "/me",
    summary="Who am I",
    response_model=Party,
    responses={401: {"description": "unauthenticated"}},
)
async def me(subject: SubjectDep, session: SessionDep) -> Party:
    """Your party as the server knows it."""
    row = await service.get(session, subject.party_id)
    if row is None:
        raise NotFound("no such party")
    return Party.of(row)


@router.post(
    "/me/keys",
    summary="Rotate my key",
    response_model=Party,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["object", "assertion"],
                        "properties": {
                            "object": {
                                "type": "object",
                                "description": "key-rotation object signed by the old key",
                            },
                            "assertion": {
                                "type": "string",
                                "description": "JWT signed by the new key, aud = "
                                "<public_url>/v1/parties/me/keys",
                            },
                        },
                    }
                }
            },
        }
    },
    responses={
        401: {"description": "unauthenticated"},
        409: {"description": "already_registered / key_retired"},
    },
)
async def rotate(request: Request, svc: ServicesDep, subject: SubjectDep) -> Response:
    """Move to a new key: the old key signs a rotation statement naming the new key, the new
    key proves possession. The old key stops working at once."""
    from rapport_protocol import envelope, errors, strict_json

    from ..domain import DomainError
    from ..protocol_errors import to_problem

    raw = await request.body()
    try:
        doc = strict_json.loads(raw)
        if (
            not isinstance(doc, dict)
            or set(doc) != {"object", "assertion"}
            or not isinstance(doc["assertion"], str)
        ):
            raise DomainError("body is {object, assertion}", status=422, code="validation_error")
        obj = envelope.verify(doc["object"], now=svc.clock(), skew=svc.settings.clock_skew_seconds)
    except errors.ProtocolError as exc:
        raise to_problem(exc) from None
    settings = svc.settings
    proof = verify_assertion(
        doc["assertion"],
        audience=settings.public_url.rstrip("/") + "/v1/parties/me/keys",
        now=svc.clock(),
        max_age=settings.assertion_max_age,
        skew=settings.clock_skew_seconds,
    )

    async def unit(ctx: UnitContext) -> Party:
        row = await service.rotate_key(ctx, subject, obj, proof, svc.clock())
        ctx.after_commit(lambda: svc.parties.drop(subject.party_id))
        return Party.of(row)

    return await run_write(request, svc, subject.party_id, unit)
