"""What every plan shares: the client's state (base URL, signer, cached party), parsing of
answers, pagination, and signing the next object of a connection's chain.

A *plan* (see :mod:`rapport_client._core`) is one API operation written once as a
generator of requests; the resource plans live in ``_plans`` (connection lifecycle),
``_exchange_plans`` (favours and messages) and ``_account_plans`` (account, events,
webhooks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from rapport_protocol import MessageType
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
