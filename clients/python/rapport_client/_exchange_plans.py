"""Plans of what flows within a connection: favours and messages."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any, Literal

from rapport_protocol import MessageType

from . import errors, models
from ._core import ApiRequest, Plan, expect
from ._operations import MT, STALE_HEAD_CODES, Operations, Paged, parse
from ._signing import ChainHead


class FavourPlans:
    """``client.favours``: ask, answer and close favours; the reciprocity ledger."""

    def __init__(self, ops: Operations) -> None:
        self._ops = ops

    def request(
        self,
        cid: str,
        *,
        kind: str,
        description: str,
        return_of: str | None = None,
        due_time: int | None = None,
        expires_time: int | None = None,
    ) -> Plan[models.Favour]:
        """Ask the other party a favour of ``kind`` (needs their ``favour`` grant for it).

        ``return_of`` names a favour you did for them (fulfilled): doing this one, they
        return it, and the ledger counts it as returned by them."""
        body: dict[str, Any] = {"kind": kind, "description": description}
        if return_of:
            body["return_of"] = return_of
        if due_time is not None:
            body["due_time"] = due_time
        result = yield from self._ops.chained(
            "POST",
            f"/v1/connections/{cid}/favours",
            cid,
            MT.FAVOUR_REQUEST,
            body,
            expires_time=expires_time,
        )
        return parse(models.Favour, result)

    def _step(
        self, cid: str, favour_id: str, step: str, mtype: MessageType, note: str | None
    ) -> Plan[models.Favour]:
        body: dict[str, Any] = {"favour": favour_id}
        if note:
            body["note"] = note
        result = yield from self._ops.chained(
            "POST", f"/v1/connections/{cid}/favours/{favour_id}/{step}", cid, mtype, body
        )
        return parse(models.Favour, result)

    def accept(self, cid: str, favour_id: str, *, note: str | None = None) -> Plan[models.Favour]:
        """Agree to do a favour asked of you."""
        return self._step(cid, favour_id, "accept", MT.FAVOUR_ACCEPT, note)

    def decline(self, cid: str, favour_id: str, *, note: str | None = None) -> Plan[models.Favour]:
        """Say no to a favour asked of you."""
        return self._step(cid, favour_id, "decline", MT.FAVOUR_DECLINE, note)

    def withdraw(self, cid: str, favour_id: str, *, note: str | None = None) -> Plan[models.Favour]:
        """Take back a favour you asked (while requested or accepted)."""
        return self._step(cid, favour_id, "withdraw", MT.FAVOUR_WITHDRAW, note)

    def fulfil(self, cid: str, favour_id: str, *, note: str | None = None) -> Plan[models.Favour]:
        """Report a favour you accepted as done."""
        return self._step(cid, favour_id, "fulfil", MT.FAVOUR_FULFIL, note)

    def acknowledge(
        self, cid: str, favour_id: str, *, note: str | None = None
    ) -> Plan[models.Favour]:
        """Thank the other party for a favour they fulfilled for you."""
        return self._step(cid, favour_id, "acknowledge", MT.FAVOUR_ACKNOWLEDGE, note)

    def list(
        self, cid: str, *, status: Literal["open", "all"] = "open"
    ) -> Plan[builtins.list[models.Favour]]:
        """Favours in ``cid``: open ones, or ``all``."""
        answer = yield ApiRequest(
            "GET", f"/v1/connections/{cid}/favours", params={"status": status}
        )
        body = expect(answer)
        if not isinstance(body, list):
            raise errors.ResponseFormatError("favours are a JSON list")
        return [parse(models.Favour, item) for item in body]

    def ledger(self, cid: str) -> Plan[models.Ledger]:
        """Favours given, received and returned by each side."""
        answer = yield ApiRequest("GET", f"/v1/connections/{cid}/ledger")
        return parse(models.Ledger, expect(answer))


class MessagePlans:
    """``client.messages``: send within the grants you hold, read and ack your inbox."""

    def __init__(self, ops: Operations) -> None:
        self._ops = ops

    @staticmethod
    def _body(
        topic: str, content_type: str, purpose: str | None, reply_to: str | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"topic": topic, "content_type": content_type}
        if purpose:
            body["purpose"] = purpose
        if reply_to:
            body["reply_to"] = reply_to
        return body

    def send(
        self,
        cid: str,
        *,
        topic: str,
        content: str,
        content_type: str = "text/plain",
        purpose: str | None = None,
        reply_to: str | None = None,
        expires_time: int | None = None,
    ) -> Plan[models.SendResult]:
        """Send a message on ``topic``. Delivered only if a grant of the recipient allows it
        now; refusals raise :class:`~rapport_client.errors.GrantMissing`,
        :class:`~rapport_client.errors.Muted`, :class:`~rapport_client.errors.RateExceeded`
        (``retry_after``), :class:`~rapport_client.errors.QuietHours`,
        :class:`~rapport_client.errors.ConnectionSevered`, ... A mute in ``hold`` mode
        accepts the message with ``held=True``."""
        result = yield from self._ops.chained(
            "POST",
            f"/v1/connections/{cid}/messages",
            cid,
            MT.MESSAGE,
            self._body(topic, content_type, purpose, reply_to),
            payload=content,
            expires_time=expires_time,
        )
        return parse(models.SendResult, result)

    def send_batch(
        self, messages: Sequence[models.OutgoingMessage]
    ) -> Plan[list[models.SendBatchItem]]:
        """Send up to 100 messages, on any of your connections, in one request. Each is
        decided as :meth:`send` would decide it, in list order (several may continue one
        chain); refusals do not raise but come back in their item
        (:meth:`~rapport_client.models.SendBatchItem.error` gives the typed exception).
        Messages after a refused one on the same connection fail ``chain_broken``: send
        them again. Retried with one ``Idempotency-Key``, the accepted ones are not sent
        twice. Raises only for the request as a whole (token, shape, transport)."""
        ops = self._ops
        signer = ops.signer
        heads: dict[str, ChainHead] = {}
        objects = []
        for m in messages:
            if m.cid not in heads:
                heads[m.cid] = yield from ops.head(m.cid)
            obj = signer.next_in(
                m.cid,
                heads[m.cid],
                MT.MESSAGE,
                self._body(m.topic, m.content_type, m.purpose, m.reply_to),
                payload=m.content,
                expires_time=m.expires_time,
            )
            heads[m.cid] = ChainHead(obj.seq, obj.id)
            objects.append(obj)
        try:
            answer = yield ApiRequest(
                "POST", "/v1/messages/batch", json={"objects": [o.to_json() for o in objects]}
            )
        except errors.APIConnectionError:
            for cid in heads:  # the outcome is unknown: re-read the heads next time
                signer.forget(cid)
            raise
        if not answer.ok:
            if answer.status >= 500 or answer.status == 408:
                for cid in heads:
                    signer.forget(cid)
            raise answer.error()
        items = [models.SendBatchItem.model_validate(r) for r in answer.body["results"]]
        for obj, item in zip(objects, items, strict=True):
            assert obj.cid is not None
            if item.ok:
                signer.advance(obj)
            elif (item.problem or {}).get("code") in STALE_HEAD_CODES or item.status >= 500:
                signer.forget(obj.cid)
        return items

    def inbox(
        self, *, cid: str | None = None, unacked: bool = False, limit: int | None = None
    ) -> Paged[models.InboxMessage]:
        """Messages delivered to you, oldest first (iterate for all pages)."""
        return self._ops.paged(
            "/v1/messages",
            models.InboxMessage,
            {"cid": cid, "unacked": "true" if unacked else None, "limit": limit},
        )

    def ack(self, message_id: int) -> Plan[models.InboxMessage]:
        """Mark inbox message ``message_id`` as received (idempotent)."""
        answer = yield ApiRequest("POST", f"/v1/messages/{message_id}/ack")
        return parse(models.InboxMessage, expect(answer))

    def broadcast(
        self,
        *,
        topic: str,
        content: str,
        content_type: str = "text/plain",
        purpose: str | None = None,
        expires_time: int | None = None,
    ) -> Plan[models.BroadcastResult]:
        """One signed message to every connection whose grants permit ``topic`` now."""
        obj = self._ops.signer.unchained(
            MT.MESSAGE,
            self._body(topic, content_type, purpose, None),
            payload=content,
            expires_time=expires_time,
        )
        answer = yield ApiRequest("POST", "/v1/broadcasts", json={"object": obj.to_json()})
        return parse(models.BroadcastResult, expect(answer))
