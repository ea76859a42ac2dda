"""Every API operation, written once as a plan (see :mod:`rapport_client._core`).

Plans build and sign the protocol objects, choose the route, parse the answer into a model
and keep the chain heads right; the clients only move bytes. Resource namespaces of
:class:`~rapport_client.Client` and :class:`~rapport_client.AsyncClient` wrap these
methods one to one, so both clients have the same calls with the same docstrings.
"""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from rapport_protocol import MessageType, SigningKey, derive_cid, verify_log
from rapport_protocol.log import VerifiedLog
from rapport_protocol.types import GrantSpec

from . import errors, models
from ._core import ApiRequest, Plan, expect
from ._signing import ChainHead, Signer, chain_position, client_assertion

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
MT = MessageType

GrantInput = GrantSpec | Mapping[str, Any]
"""A grant: a :class:`rapport_protocol.types.GrantSpec` or a dict of its members, e.g.
``{"scope": "message", "topic": "order_updates", "rate": {"count": 3, "period": "P1D"}}``."""

STALE_HEAD_CODES = frozenset({"chain_broken", "replayed"})
"""Answers meaning our chain head is behind the server's: re-read it from the log."""

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def parse(model: type[M], body: Any) -> M:
    """``body`` as ``model``; a shape the API does not promise is a ResponseFormatError."""
    try:
        return model.model_validate(body)
    except PydanticValidationError as exc:
        raise errors.ResponseFormatError(
            f"answer is not a {model.__name__}: {exc.errors()[0].get('msg')}"
        ) from None


def grant_json(grant: GrantInput) -> dict[str, Any]:
    """A grant as the JSON a signed body carries (validated against the protocol)."""
    spec = grant if isinstance(grant, GrantSpec) else GrantSpec.model_validate(dict(grant))
    return spec.model_dump(mode="json", exclude_none=True)


@dataclass(frozen=True, slots=True)
class Paged(Generic[T]):
    """A list call: ``fetch(cursor)`` is the plan for one page (``None`` = the first)."""

    fetch: Callable[[str | None], Plan[models.Page[T]]]


class Operations:
    """Shared state of one client: base URL, signer, the cached party."""

    def __init__(self, base_url: str, signer: Signer | None, public_url: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.public_url = (public_url or base_url).rstrip("/")
        self._signer = signer
        self.party: models.Party | None = None

    @property
    def signer(self) -> Signer:
        """The local signer; operations that sign need a key."""
        if self._signer is None:
            raise errors.RapportError(
                "this client has no key: pass key=, key_file= or set RAPPORT_PRIVATE_KEY",
                code="no_key",
            )
        return self._signer

    @property
    def has_key(self) -> bool:
        return self._signer is not None

    # --- plumbing shared by the resources ------------------------------------------------

    def token_request(self) -> ApiRequest:
        """The OAuth token request with a fresh assertion (a new one for every attempt)."""
        signer = self.signer
        return ApiRequest(
            "POST",
            "/v1/oauth/token",
            rebuild=self.token_request,
            form={
                "grant_type": JWT_BEARER,
                "assertion": client_assertion(
                    signer.key, self.public_url + "/v1/oauth/token", signer.clock()
                ),
            },
            auth=False,
        )

    def token(self) -> Plan[models.Token]:
        """Exchange an assertion for an access token."""
        return parse(models.Token, expect((yield self.token_request())))

    def me(self) -> Plan[models.Party]:
        """The authenticated party (cached after the first call)."""
        if self.party is None:
            self.party = parse(models.Party, expect((yield ApiRequest("GET", "/v1/parties/me"))))
        return self.party

    def page(
        self, path: str, model: type[M], params: Mapping[str, Any] | None, cursor: str | None
    ) -> Plan[models.Page[M]]:
        """One page of a list route."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if cursor is not None:
            query["cursor"] = cursor
        body = expect((yield ApiRequest("GET", path, params=query)))
        return parse(models.Page[model], body)  # type: ignore[valid-type]

    def paged(self, path: str, model: type[M], params: Mapping[str, Any] | None = None) -> Paged[M]:
        return Paged(lambda cursor: self.page(path, model, params, cursor))

    def log_entries(self, cid: str) -> Plan[list[dict[str, Any]]]:
        """Every entry of a connection's log, all pages."""
        entries: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = yield from self.page(
                f"/v1/connections/{cid}/log", models.LogItem, {"limit": 200}, cursor
            )
            entries.extend(item.model_dump() for item in page.data)
            if not page.has_more or page.next_cursor is None:
                return entries
            cursor = page.next_cursor

    def head(self, cid: str) -> Plan[ChainHead]:
        """Our chain head in ``cid``: from memory, else recovered from the log."""
        signer = self.signer
        known = signer.chains.get(cid)
        if known is not None:
            return known
        entries = yield from self.log_entries(cid)
        head = chain_position(entries, signer.did)
        signer.chains[cid] = head
        return head

    def chained(
        self,
        method: str,
        path: str,
        cid: str,
        mtype: MessageType,
        body: BaseModel | dict[str, Any],
        *,
        payload: str | None = None,
        **headers: Any,
    ) -> Plan[Any]:
        """Sign the next object of our chain in ``cid``, send it, move the head on success.

        A ``chain_broken`` or ``replayed`` answer (another process of ours moved the chain
        since we last looked) is healed once:
        the head is re-read from the log and the object re-signed. When the outcome is
        unknown (no answer, or a server error), the head is forgotten and re-read next time.
        """
        signer = self.signer
        for attempt in range(2):
            head = yield from self.head(cid)
            obj = signer.next_in(cid, head, mtype, body, payload=payload, **headers)
            try:
                answer = yield ApiRequest(method, path, json={"object": obj.to_json()})
            except errors.APIConnectionError:
                signer.forget(cid)
                raise
            if answer.ok:
                signer.advance(obj)
                return answer.body
            if answer.code in STALE_HEAD_CODES and attempt == 0:
                signer.forget(cid)
                continue
            if answer.status >= 500 or answer.status == 408:
                signer.forget(cid)
            raise answer.error()
        raise AssertionError("unreachable")  # pragma: no cover


class PartyPlans:
    """``client.parties``: register, read yourself, rotate your key."""

    def __init__(self, ops: Operations) -> None:
        self._ops = ops

    def register(
        self,
        kind: Literal["business", "person"],
        display_name: str,
        *,
        profile_url: str | None = None,
        logo_url: str | None = None,
    ) -> Plan[models.Party]:
        """Register this client's key as a business or person; proves possession of the key.

        Raises :class:`~rapport_client.errors.Conflict` (``already_registered``) when the
        key is registered already.
        """
        ops = self._ops
        signer = ops.signer

        def request() -> ApiRequest:
            # A fresh assertion (new jti) for every attempt: a used one is refused.
            body: dict[str, Any] = {
                "kind": kind,
                "display_name": display_name,
                "assertion": client_assertion(
                    signer.key, ops.public_url + "/v1/parties", signer.clock()
                ),
            }
            if profile_url:
                body["profile_url"] = profile_url
            if logo_url:
                body["logo_url"] = logo_url
            return ApiRequest("POST", "/v1/parties", json=body, auth=False, rebuild=request)

        answer = yield request()
        party = parse(models.Party, expect(answer))
        ops.party = party
        return party

    def me(self) -> Plan[models.Party]:
        """Your party as the server knows it."""
        self._ops.party = None
        return (yield from self._ops.me())

    def rotate_key(self, new_key: SigningKey) -> Plan[models.Party]:
        """Move to ``new_key``: the old key signs the rotation, the new key proves possession.

        On success the client signs with ``new_key`` from then on (save it first:
        :func:`rapport_client.keys.save_key`). The old key stops working at once.
        """
        ops = self._ops
        signer = ops.signer
        obj = signer.unchained(MT.KEY_ROTATION, {"new_key": new_key.did})
        assertion = client_assertion(
            new_key, ops.public_url + "/v1/parties/me/keys", signer.clock()
        )
        answer = yield ApiRequest(
            "POST", "/v1/parties/me/keys", json={"object": obj.to_json(), "assertion": assertion}
        )
        party = parse(models.Party, expect(answer))
        signer.key = new_key
        ops.party = party
        return party


class InvitationPlans:
    """``client.invitations``: create, list, look up, accept, decline."""

    def __init__(self, ops: Operations) -> None:
        self._ops = ops

    def create(
        self,
        *,
        label: str,
        offered: Sequence[GrantInput] = (),
        requested: Sequence[GrantInput] = (),
        multi_use: bool = False,
        max_uses: int | None = None,
        expires_in: int | None = None,
        expires_time: int | None = None,
        to: Sequence[str] | None = None,
        goal: str | None = None,
    ) -> Plan[models.Invitation]:
        """Create an invitation: the grants you ``offered`` (what the invitee may send you)
        and those you ``requested`` (what you ask to send them).

        Single-use unless ``multi_use`` (optionally ``max_uses``); expires after
        ``expires_in`` seconds or at ``expires_time``; ``to`` addresses it to given DIDs.
        The answer carries the link ``token`` and ``url`` to share.
        """
        ops = self._ops
        party = yield from ops.me()
        body: dict[str, Any] = {
            "label": label,
            "kind": party.kind,
            "multi_use": multi_use,
            "offered": [grant_json(g) for g in offered],
            "requested": [grant_json(g) for g in requested],
            "nonce": secrets.token_urlsafe(12),
        }
        if max_uses is not None:
            body["max_uses"] = max_uses
        if goal:
            body["goal"] = goal
        signer = ops.signer
        if expires_in is not None:
            expires_time = signer.clock() + expires_in
        obj = signer.unchained(
            MT.INVITATION, body, to=list(to) if to else None, expires_time=expires_time
        )
        answer = yield ApiRequest("POST", "/v1/invitations", json={"object": obj.to_json()})
        return parse(models.Invitation, expect(answer))

    def list(
        self, *, status: Literal["open", "used", "declined", "revoked"] | None = None
    ) -> Paged[models.Invitation]:
        """Your invitations (iterate for all pages), optionally by ``status``."""
        return self._ops.paged("/v1/invitations", models.Invitation, {"status": status})

    def lookup(self, token: str) -> Plan[models.Invitation]:
        """What an invitation link points to (no login needed: the token is the capability)."""
        answer = yield ApiRequest("GET", f"/v1/invitations/by-token/{token}", auth=False)
        return parse(models.Invitation, expect(answer))

    def accept(
        self,
        invitation: str | models.Invitation,
        *,
        grants: Sequence[GrantInput] = (),
        label: str | None = None,
    ) -> Plan[models.Connection]:
        """Accept an invitation (its id or the looked-up :class:`Invitation`), giving the
        inviter ``grants`` (what it may send you). Creates the connection."""
        ops = self._ops
        party = yield from ops.me()
        invitation_id = invitation.id if isinstance(invitation, models.Invitation) else invitation
        if label is None:
            label = invitation.label if isinstance(invitation, models.Invitation) else ""
        signer = ops.signer
        cid = derive_cid(invitation_id, signer.did)
        signer.chains[cid] = ChainHead()
        body = {
            "invitation": invitation_id,
            "label": label,
            "kind": party.kind,
            "grants": [grant_json(g) for g in grants],
        }
        result = yield from ops.chained(
            "POST", f"/v1/invitations/{invitation_id}/accept", cid, MT.ACCEPT, body,
            thid=invitation_id,
        )  # fmt: skip
        return parse(models.Connection, result)

    def decline(
        self, invitation: str | models.Invitation, *, reason: str | None = None
    ) -> Plan[models.Connection]:
        """Decline an invitation; the inviter learns of it."""
        ops = self._ops
        invitation_id = invitation.id if isinstance(invitation, models.Invitation) else invitation
        signer = ops.signer
        cid = derive_cid(invitation_id, signer.did)
        signer.chains[cid] = ChainHead()
        body: dict[str, Any] = {"invitation": invitation_id}
        if reason:
            body["reason"] = reason
        result = yield from ops.chained(
            "POST", f"/v1/invitations/{invitation_id}/decline", cid, MT.DECLINE, body,
            thid=invitation_id,
        )  # fmt: skip
        return parse(models.Connection, result)


class ConnectionPlans:
    """``client.connections``: list, get, read and verify the log, sever."""

    def __init__(self, ops: Operations) -> None:
        self._ops = ops

    def list(
        self,
        *,
        status: Literal["active", "declined", "severed"] | None = None,
        counterparty: str | None = None,
        limit: int | None = None,
    ) -> Paged[models.Connection]:
        """Your connections (iterate for all pages), by ``status`` or ``counterparty`` id."""
        return self._ops.paged(
            "/v1/connections",
            models.Connection,
            {"status": status, "counterparty": counterparty, "limit": limit},
        )

    def get(self, cid: str) -> Plan[models.Connection]:
        """One of your connections: status, mutes, grants in force, severance."""
        return parse(models.Connection, expect((yield ApiRequest("GET", f"/v1/connections/{cid}"))))

    def log(self, cid: str, *, limit: int | None = None) -> Paged[models.LogItem]:
        """The connection's signed log in order (iterate for all pages)."""
        return self._ops.paged(f"/v1/connections/{cid}/log", models.LogItem, {"limit": limit})

    def verify(self, cid: str) -> Plan[VerifiedLog]:
        """Fetch the whole log and verify it offline (see :func:`rapport_client.verify_log`)."""
        entries = yield from self._ops.log_entries(cid)
        return verify_log([(e["object"], e["received_time"]) for e in entries])

    def sever(
        self,
        cid: str,
        *,
        data: Literal["delete", "retain_legal", "export_then_delete"] = "delete",
        block_reinvite: bool = False,
        reason: str | None = None,
    ) -> Plan[models.Connection]:
        """Cut the other party off for good: every grant ends, open favours are cancelled,
        ``data`` says what happens to message content, ``block_reinvite`` stops them inviting
        you again."""
        body: dict[str, Any] = {"data": data, "block_reinvite": block_reinvite}
        if reason:
            body["reason"] = reason
        result = yield from self._ops.chained(
            "POST", f"/v1/connections/{cid}/sever", cid, MT.SEVER, body
        )
        return parse(models.Connection, result)


class GrantPlans:
    """``client.grants``: what you allow the other party to send you."""

    def __init__(self, ops: Operations) -> None:
        self._ops = ops

    def issue(self, cid: str, grant: GrantInput) -> Plan[models.Grant]:
        """Allow the other party to send you ``grant``'s scope and topic, with its limits."""
        result = yield from self._ops.chained(
            "POST",
            f"/v1/connections/{cid}/grants",
            cid,
            MT.GRANT_ISSUE,
            {"grant": grant_json(grant)},
        )
        return parse(models.Grant, result)

    def amend(self, cid: str, grant_id: str, grant: GrantInput) -> Plan[models.Grant]:
        """Replace grant ``grant_id`` with ``grant`` (compare-and-swap: raises
        :class:`~rapport_client.errors.GrantConflict` if it is no longer the one in force)."""
        result = yield from self._ops.chained(
            "POST",
            f"/v1/connections/{cid}/grants/{grant_id}/amend",
            cid,
            MT.GRANT_AMEND,
            {"replaces": grant_id, "grant": grant_json(grant)},
        )
        return parse(models.Grant, result)

    def revoke(self, cid: str, grant_id: str) -> Plan[models.Grant]:
        """Withdraw grant ``grant_id``: nothing more is delivered under it."""
        result = yield from self._ops.chained(
            "POST",
            f"/v1/connections/{cid}/grants/{grant_id}/revoke",
            cid,
            MT.GRANT_REVOKE,
            {"grant_id": grant_id},
        )
        return parse(models.Grant, result)

    def list(self, cid: str, *, history: bool = False) -> Plan[models.GrantList]:
        """Grants both ways in ``cid`` (``history`` includes ended ones)."""
        answer = yield ApiRequest(
            "GET", f"/v1/connections/{cid}/grants", params={"history": str(history).lower()}
        )
        return parse(models.GrantList, expect(answer))

    def receipt(
        self, cid: str, grant_id: str, *, format: Literal["kantara", "dpv"] = "kantara"
    ) -> Plan[dict[str, Any]]:
        """A consent receipt for the grant (Kantara 1.1 JSON or ISO/IEC TS 27560 in DPV)."""
        answer = yield ApiRequest(
            "GET", f"/v1/connections/{cid}/grants/{grant_id}/receipt", params={"format": format}
        )
        body = expect(answer)
        if not isinstance(body, dict):
            raise errors.ResponseFormatError("a receipt is a JSON object")
        return body


class MutePlans:
    """``client.mutes``: silence the other party for a while, or lift it."""

    def __init__(self, ops: Operations) -> None:
        self._ops = ops

    def set(
        self,
        cid: str,
        *,
        until: int | None = None,
        exempt_topics: Iterable[str] = (),
        mode: Literal["hold", "reject"] = "hold",
    ) -> Plan[models.Connection]:
        """Mute until ``until`` (UTC seconds; ``None`` = until lifted), except
        ``exempt_topics``; ``hold`` keeps messages for later, ``reject`` refuses them."""
        body: dict[str, Any] = {"exempt_topics": list(exempt_topics), "mode": mode}
        if until is not None:
            body["until"] = until
        result = yield from self._ops.chained(
            "PUT", f"/v1/connections/{cid}/mute", cid, MT.MUTE, body
        )
        return parse(models.Connection, result)

    def clear(self, cid: str) -> Plan[models.Connection]:
        """Lift your mute now; held messages are released to your inbox."""
        result = yield from self._ops.chained(
            "POST", f"/v1/connections/{cid}/unmute", cid, MT.UNMUTE, {}
        )
        return parse(models.Connection, result)


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
