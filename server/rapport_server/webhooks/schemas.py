"""Request and response models of the webhooks domain."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..schemas import Out
from ..tables import WebhookDelivery as DeliveryRow
from ..tables import WebhookEndpoint as EndpointRow
from .service import PARKED

EventType = Literal["message", "connection", "grant", "mute", "sever", "favour", "key"]


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[
        str,
        Field(
            min_length=8,
            max_length=2048,
            description="https URL of your receiver (public address; no redirects followed).",
        ),
    ]
    types: Annotated[
        list[EventType] | None,
        Field(min_length=1, max_length=7, description="Event types to deliver; omit for all."),
    ] = None
    description: Annotated[str | None, Field(max_length=200)] = None


class WebhookEndpoint(Out):
    id: str
    url: str
    types: list[EventType] | None
    description: str | None
    enabled: bool
    disabled_reason: str | None
    created_time: int
    secret: str | None = Field(
        default=None,
        description="whsec_… for the v1 (HMAC) signature; returned only on create and rotate.",
    )

    @classmethod
    def of(cls, row: EndpointRow, *, with_secret: bool = False) -> WebhookEndpoint:
        return cls(
            id=row.id,
            url=row.url,
            types=row.types.split(",") if row.types else None,  # type: ignore[arg-type]
            description=row.description,
            enabled=row.status == "enabled",
            disabled_reason=row.disabled_reason,
            created_time=row.created_at,
            secret=row.secret if with_secret else None,
        )


class WebhookDelivery(Out):
    id: int
    event_id: int = Field(description="The event's number in your stream.")
    webhook_id: str = Field(description="The webhook-id header (stable across retries).")
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    next_attempt_time: float | None = Field(
        description="When the next attempt is due; null once delivered or dead, and while "
        "the endpoint is disabled (enabling it makes its pending deliveries due at once)."
    )
    last_status: int | None
    last_error: str | None
    delivered_time: int | None

    @classmethod
    def of(cls, row: DeliveryRow, seq: int) -> WebhookDelivery:
        return cls(
            id=row.id,
            event_id=seq,
            webhook_id=webhook_id(row.event_id),
            status=row.status,  # type: ignore[arg-type]
            attempts=row.attempts,
            next_attempt_time=(
                row.next_attempt_at
                if row.status == "pending" and row.next_attempt_at < PARKED
                else None  # delivered, dead, or waiting for its endpoint to be enabled
            ),
            last_status=row.last_status,
            last_error=row.last_error,
            delivered_time=row.delivered_at,
        )


class Replay(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after: Annotated[
        int | None,
        Field(
            ge=0,
            le=2**53 - 1,
            description="Redeliver every event numbered above this; omit to retry dead ones.",
        ),
    ] = None


class ReplayResult(Out):
    scheduled: int


class WebhookKey(Out):
    kid: str
    alg: Literal["Ed25519"]
    public_key: str = Field(description="whpk_ + base64 of the raw 32-byte Ed25519 key.")


class WebhookKeys(Out):
    keys: list[WebhookKey]


def webhook_id(event_row_id: int) -> str:
    """The Standard Webhooks message id of an event: unique across parties (one receiver
    may serve many parties' endpoints), the same on every retry and replay."""
    return f"msg_{event_row_id}"
