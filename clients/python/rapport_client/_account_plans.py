"""Plans of the party's own things: account, event stream, webhook endpoints."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any, Literal

from . import errors, models
from ._core import ApiRequest, Plan, expect
from ._operations import MT, Operations, Paged, parse


class AccountPlans:
    """``client.account``: export everything, or delete it."""

    def __init__(self, ops: Operations) -> None:
        self._ops = ops

    def export(self) -> Plan[models.AccountExport]:
        """Everything the server holds about you, logs included."""
        answer = yield ApiRequest("GET", "/v1/account/export")
        return parse(models.AccountExport, expect(answer))

    def delete(
        self, *, data: Literal["delete", "retain_legal", "export_then_delete"] = "delete"
    ) -> Plan[models.AccountDeleted]:
        """Sever every active connection (with ``data`` as the instruction), revoke your
        invitations and delete your party. Irreversible."""
        ops = self._ops
        signer = ops.signer
        objects = []
        cursor: str | None = None
        while True:
            page = yield from ops.page(
                "/v1/connections", models.Connection, {"status": "active", "limit": 200}, cursor
            )
            for conn in page.data:
                head = yield from ops.head(conn.cid)
                objects.append(signer.next_in(conn.cid, head, MT.SEVER, {"data": data}).to_json())
            if not page.has_more or page.next_cursor is None:
                break
            cursor = page.next_cursor
        answer = yield ApiRequest("POST", "/v1/account/delete", json={"objects": objects})
        result = parse(models.AccountDeleted, expect(answer))
        signer.chains.clear()
        ops.party = None
        return result


class EventPlans:
    """``client.events``: your event stream (messages, grants, mutes, severs, favours)."""

    def __init__(self, ops: Operations) -> None:
        self._ops = ops

    def list(self, *, after: int | None = None, limit: int | None = None) -> Paged[models.Event]:
        """Events after sequence number ``after`` (iterate for all pages)."""
        return self._ops.paged("/v1/events", models.Event, {"after": after, "limit": limit})


class WebhookEndpointPlans:
    """``client.webhook_endpoints``: where the server POSTs your events."""

    def __init__(self, ops: Operations) -> None:
        self._ops = ops

    def _one(self, method: str, path: str, json: Any = None) -> Plan[models.WebhookEndpoint]:
        answer = yield ApiRequest(method, path, json=json)
        return parse(models.WebhookEndpoint, expect(answer))

    def create(
        self, *, url: str, types: Sequence[str] | None = None, description: str | None = None
    ) -> Plan[models.WebhookEndpoint]:
        """Register an endpoint for all event ``types`` or some; the answer's ``secret``
        (``whsec_…``) is shown once: store it to verify deliveries."""
        body: dict[str, Any] = {"url": url}
        if types is not None:
            body["types"] = list(types)
        if description:
            body["description"] = description
        return self._one("POST", "/v1/webhook-endpoints", body)

    def list(self) -> Paged[models.WebhookEndpoint]:
        """Your webhook endpoints."""
        return self._ops.paged("/v1/webhook-endpoints", models.WebhookEndpoint)

    def get(self, endpoint_id: str) -> Plan[models.WebhookEndpoint]:
        """One endpoint."""
        return self._one("GET", f"/v1/webhook-endpoints/{endpoint_id}")

    def delete(self, endpoint_id: str) -> Plan[None]:
        """Remove an endpoint; nothing more is delivered to it."""
        expect((yield ApiRequest("DELETE", f"/v1/webhook-endpoints/{endpoint_id}")))
        return None

    def rotate_secret(self, endpoint_id: str) -> Plan[models.WebhookEndpoint]:
        """A new signing secret (in the answer); the old one stops being used."""
        return self._one("POST", f"/v1/webhook-endpoints/{endpoint_id}/rotate-secret")

    def disable(self, endpoint_id: str) -> Plan[models.WebhookEndpoint]:
        """Pause deliveries to an endpoint."""
        return self._one("POST", f"/v1/webhook-endpoints/{endpoint_id}/disable")

    def enable(self, endpoint_id: str) -> Plan[models.WebhookEndpoint]:
        """Resume deliveries to an endpoint."""
        return self._one("POST", f"/v1/webhook-endpoints/{endpoint_id}/enable")

    def deliveries(
        self, endpoint_id: str, *, status: Literal["pending", "delivered", "dead"] | None = None
    ) -> Paged[models.WebhookDelivery]:
        """Delivery records of an endpoint (``status="dead"`` for the given-up ones)."""
        return self._ops.paged(
            f"/v1/webhook-endpoints/{endpoint_id}/deliveries",
            models.WebhookDelivery,
            {"status": status},
        )

    def replay(self, endpoint_id: str, *, after: int | None = None) -> Plan[models.ReplayResult]:
        """Deliver again: every event numbered above ``after``, or (without it) the dead
        deliveries. Redeliveries keep their ``webhook-id`` so receivers can de-duplicate."""
        body = {"after": after} if after is not None else {}
        answer = yield ApiRequest("POST", f"/v1/webhook-endpoints/{endpoint_id}/replay", json=body)
        return parse(models.ReplayResult, expect(answer))

    def keys(self) -> Plan[builtins.list[models.WebhookKey]]:
        """The server's webhook signing keys (for ``v1a`` Ed25519 verification)."""
        answer = yield ApiRequest("GET", "/.well-known/rapport-webhook-keys", auth=False)
        body = expect(answer)
        keys = body.get("keys") if isinstance(body, dict) else None
        if not isinstance(keys, list):
            raise errors.ResponseFormatError('webhook keys are {"keys": [...]}')
        return [parse(models.WebhookKey, k) for k in keys]
