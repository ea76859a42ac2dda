"""Plans of the connection lifecycle: parties, invitations, connections, grants, mutes.

Plans build and sign the protocol objects, choose the route, parse the answer into a model
and keep the chain heads right; the clients only move bytes. Resource namespaces of
:class:`~rapport_client.Client` and :class:`~rapport_client.AsyncClient` wrap these
methods one to one, so both clients have the same calls with the same docstrings.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from rapport_protocol import SigningKey, derive_cid, verify_log
from rapport_protocol.log import VerifiedLog

from . import errors, models
from ._core import ApiRequest, Plan, expect
from ._operations import MT, GrantInput, Operations, Paged, grant_json, parse
from ._signing import ChainHead, client_assertion


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
