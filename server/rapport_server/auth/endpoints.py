"""POST /v1/oauth/token: exchange a signed client assertion for an access token."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form
from pydantic import BaseModel

from ..domain import DomainError
from ..parties import service as parties_service
from ..tables import Party
from ..web import ServicesDep
from ..writes import UnitContext
from .tokens import verify_assertion

router = APIRouter(prefix="/v1/oauth", tags=["auth"])

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - a token type, not a secret
    expires_in: int


PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "invalid_grant / invalid_request / unsupported_grant_type"}
}


@router.post(
    "/token", summary="Get an access token", response_model=TokenResponse, responses=PROBLEMS
)
async def token(
    svc: ServicesDep,
    grant_type: Annotated[str, Form(max_length=128)],
    assertion: Annotated[str, Form(max_length=4096)],
) -> TokenResponse:
    """Exchange an RFC 7523 JWT assertion, signed by your registered key, for a short-lived
    bearer token bound to that key. Each assertion (``jti``) works once."""
    if grant_type != JWT_BEARER:
        raise DomainError(
            f"grant_type must be {JWT_BEARER}", status=400, code="unsupported_grant_type"
        )
    settings = svc.settings
    proof = verify_assertion(
        assertion,
        audience=settings.token_audience,
        now=svc.clock(),
        max_age=settings.assertion_max_age,
        skew=settings.clock_skew_seconds,
    )

    async def unit(ctx: UnitContext) -> TokenResponse:
        from sqlalchemy import select

        found = await ctx.session.execute(
            select(Party).where(Party.did == proof.did, Party.deleted_at.is_(None))
        )
        party = found.scalar_one_or_none()
        if party is None:
            raise DomainError(
                "no party is registered with this key", status=400, code="invalid_grant"
            )
        await parties_service.consume_assertion(ctx.session, proof)
        return TokenResponse(
            access_token=svc.tokens.issue(party.id, party.did, svc.clock()),
            expires_in=svc.tokens.ttl,
        )

    return await svc.batcher.submit(unit)
