"""Webhook endpoints (per party) and the server's published webhook signing key."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from ..domain import Subject
from ..schemas import Page
from ..services import Services
from ..web import (
    PageDep,
    ServicesDep,
    SessionDep,
    SubjectDep,
    decode_cursor,
    encode_cursor,
    run_write,
)
from ..writes import UnitContext
from . import service, ssrf
from .schemas import (
    EndpointCreate,
    Replay,
    ReplayResult,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookKey,
    WebhookKeys,
)

router = APIRouter(prefix="/v1/webhook-endpoints", tags=["webhooks"])
keys_router = APIRouter(tags=["webhooks"])

EndpointId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "not_found"},
    401: {"description": "unauthenticated"},
}


@router.post(
    "",
    summary="Register a webhook endpoint",
    status_code=201,
    response_model=WebhookEndpoint,
    responses={422: {"description": "webhook_url_unsafe"}, 409: {"description": "too_many"}},
)
async def create(
    body: EndpointCreate, request: Request, svc: ServicesDep, subject: SubjectDep
) -> Response:
    """Deliver your events to ``url`` (Standard Webhooks: ``webhook-id``,
    ``webhook-timestamp``, ``webhook-signature`` with ``v1a`` Ed25519 and ``v1`` HMAC).
    The response carries the endpoint's ``whsec_`` secret; store it, it is not shown again."""
    url = ssrf.check_url(body.url, dev_mode=svc.settings.webhook_dev_mode)

    async def unit(ctx: UnitContext) -> WebhookEndpoint:
        row = await service.create(
            ctx,
            subject,
            url=url,
            types=list(body.types) if body.types else None,
            description=body.description,
            now=svc.clock(),
        )
        return WebhookEndpoint.of(row, with_secret=True)

    return await run_write(request, svc, subject.party_id, unit, status_code=201)


@router.get("", summary="My webhook endpoints", response_model=Page[WebhookEndpoint])
async def listing(session: SessionDep, subject: SubjectDep) -> Page[WebhookEndpoint]:
    """Every endpoint you registered (secrets are not shown)."""
    rows = await service.listing(session, subject)
    return Page[WebhookEndpoint](
        data=[WebhookEndpoint.of(r) for r in rows], next_cursor=None, has_more=False
    )


@router.get(
    "/{endpoint_id}",
    summary="One webhook endpoint",
    response_model=WebhookEndpoint,
    responses=NOT_FOUND,
)
async def get(endpoint_id: EndpointId, session: SessionDep, subject: SubjectDep) -> WebhookEndpoint:
    """One of your endpoints."""
    return WebhookEndpoint.of(await service.get(session, subject, endpoint_id))


@router.delete(
    "/{endpoint_id}", summary="Delete a webhook endpoint", status_code=204, responses=NOT_FOUND
)
async def remove(endpoint_id: EndpointId, svc: ServicesDep, subject: SubjectDep) -> Response:
    """Stop delivering to this endpoint and forget its deliveries."""

    async def unit(ctx: UnitContext) -> None:
        await service.remove(ctx, subject, endpoint_id)

    await svc.batcher.submit(unit)
    return Response(status_code=204)


@router.post(
    "/{endpoint_id}/rotate-secret",
    summary="Rotate the endpoint secret",
    response_model=WebhookEndpoint,
    responses=NOT_FOUND,
)
async def rotate(
    endpoint_id: EndpointId, request: Request, svc: ServicesDep, subject: SubjectDep
) -> Response:
    """A new ``whsec_`` secret. For 24 hours deliveries carry ``v1`` signatures with both
    the new and the previous secret, so receivers can switch without losing events."""

    async def unit(ctx: UnitContext) -> WebhookEndpoint:
        row = await service.rotate_secret(ctx, subject, endpoint_id, svc.clock())
        return WebhookEndpoint.of(row, with_secret=True)

    return await run_write(request, svc, subject.party_id, unit)


async def _toggle(
    endpoint_id: str, enabled: bool, request: Request, svc: Services, subject: Subject
) -> Response:
    async def unit(ctx: UnitContext) -> WebhookEndpoint:
        row = await service.set_enabled(ctx, subject, endpoint_id, enabled, time.time())
        return WebhookEndpoint.of(row)

    return await run_write(request, svc, subject.party_id, unit)


@router.post(
    "/{endpoint_id}/disable",
    summary="Disable an endpoint",
    response_model=WebhookEndpoint,
    responses=NOT_FOUND,
)
async def disable(
    endpoint_id: EndpointId, request: Request, svc: ServicesDep, subject: SubjectDep
) -> Response:
    """Pause deliveries. The endpoint keeps its place in your stream."""
    return await _toggle(endpoint_id, False, request, svc, subject)


@router.post(
    "/{endpoint_id}/enable",
    summary="Enable an endpoint",
    response_model=WebhookEndpoint,
    responses=NOT_FOUND,
)
async def enable(
    endpoint_id: EndpointId, request: Request, svc: ServicesDep, subject: SubjectDep
) -> Response:
    """Resume deliveries, including what accumulated while it was disabled (or after a
    410 disabled it)."""
    return await _toggle(endpoint_id, True, request, svc, subject)


@router.get(
    "/{endpoint_id}/deliveries",
    summary="Deliveries of an endpoint (dead letters with status=dead)",
    response_model=Page[WebhookDelivery],
    responses=NOT_FOUND,
)
async def deliveries(
    endpoint_id: EndpointId,
    session: SessionDep,
    subject: SubjectDep,
    page: PageDep,
    status: Annotated[Literal["pending", "delivered", "dead"] | None, Query()] = None,
) -> Page[WebhookDelivery]:
    """Attempts and their outcomes, oldest first. Response bodies are never stored."""
    after = decode_cursor(page.cursor, int) or 0
    rows = await service.deliveries(
        session, subject, endpoint_id, status=status, after=after, limit=page.limit + 1
    )
    more = len(rows) > page.limit
    rows = list(rows[: page.limit])
    return Page[WebhookDelivery](
        data=[WebhookDelivery.of(d, seq) for d, seq in rows],
        next_cursor=encode_cursor(rows[-1][0].id) if more else None,
        has_more=more,
    )


@router.post(
    "/{endpoint_id}/replay",
    summary="Redeliver events",
    response_model=ReplayResult,
    responses=NOT_FOUND,
)
async def replay(
    endpoint_id: EndpointId,
    body: Replay,
    request: Request,
    svc: ServicesDep,
    subject: SubjectDep,
) -> Response:
    """Retry every dead delivery, or (with ``after``) redeliver every event numbered above
    it. Redeliveries keep their ``webhook-id``, so receivers can de-duplicate."""

    async def unit(ctx: UnitContext) -> ReplayResult:
        n = await service.replay(ctx, subject, endpoint_id, body.after, time.time())
        return ReplayResult(scheduled=n)

    return await run_write(request, svc, subject.party_id, unit)


@keys_router.get(
    "/.well-known/rapport-webhook-keys",
    summary="The server's webhook signing keys",
    response_model=WebhookKeys,
)
async def webhook_keys(svc: ServicesDep) -> WebhookKeys:
    """Public Ed25519 keys for ``v1a`` webhook signatures (Standard Webhooks ``whpk_``)."""
    signer = svc.webhook_signer
    return WebhookKeys(
        keys=[WebhookKey(kid=signer.kid, alg="Ed25519", public_key=signer.public_key)]
    )
