"""``Client`` and ``AsyncClient``: the same resources, driven with blocking I/O or ``await``."""

from __future__ import annotations

import asyncio
import functools
import os
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

import httpx
from rapport_protocol import SigningKey

from . import errors, models
from ._core import (
    DEFAULT_TIMEOUT,
    ApiRequest,
    ApiResponse,
    Clock,
    Plan,
    RetryPolicy,
    decode_body,
    header_dict,
    system_clock,
    transport_error,
)
from ._plans import (
    AccountPlans,
    ConnectionPlans,
    EventPlans,
    FavourPlans,
    GrantPlans,
    InvitationPlans,
    MessagePlans,
    MutePlans,
    Operations,
    Paged,
    PartyPlans,
    WebhookEndpointPlans,
)
from ._signing import Signer
from ._sse import SSEDecoder
from .keys import key_from_env, load_key

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")
T = TypeVar("T")

ENV_SERVER_URL = "RAPPORT_SERVER_URL"
DEFAULT_SERVER_URL = "http://127.0.0.1:8000"
USER_AGENT = "rapport-client-python/0.1.0"
TOKEN_MARGIN = 30
"""Refresh an access token this many seconds before it expires."""


def _resolve_key(
    key: SigningKey | None, key_file: str | os.PathLike[str] | None
) -> SigningKey | None:
    if key is not None:
        return key
    if key_file is not None:
        return load_key(key_file)
    return key_from_env()


class _Base:
    """Configuration and request building shared by both clients."""

    def __init__(
        self,
        base_url: str | None,
        key: SigningKey | None,
        key_file: str | os.PathLike[str] | None,
        timeout: httpx.Timeout | float,
        retry: RetryPolicy,
        clock: Clock,
        public_url: str | None,
        seed: int | None,
        headers: dict[str, str] | None,
    ) -> None:
        self.base_url = (base_url or os.environ.get(ENV_SERVER_URL) or DEFAULT_SERVER_URL).rstrip(
            "/"
        )
        signing_key = _resolve_key(key, key_file)
        self.clock = clock
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.retry = retry
        self._rng = random.Random(seed)  # noqa: S311 - jitter only; seeded in tests
        self._headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self._ops = Operations(
            self.base_url, Signer(signing_key, clock) if signing_key else None, public_url
        )
        self._token: str | None = None
        self._token_expires = 0

    @property
    def key(self) -> SigningKey:
        """The key this client signs with."""
        return self._ops.signer.key

    @property
    def did(self) -> str:
        """This client's did:key."""
        return self._ops.signer.did

    def _token_fresh(self) -> bool:
        return self._token is not None and self.clock() < self._token_expires - TOKEN_MARGIN

    def _keep_token(self, token: models.Token) -> None:
        self._token = token.access_token
        self._token_expires = self.clock() + token.expires_in

    def _build(
        self, http: httpx.Client | httpx.AsyncClient, request: ApiRequest, idem: str | None
    ) -> httpx.Request:
        headers = {**self._headers, "Accept": "application/json", **request.headers}
        if request.auth and self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if idem:
            headers["Idempotency-Key"] = idem
        return http.build_request(
            request.method,
            self.base_url + request.path,
            params=request.params,
            json=request.json if request.form is None and request.json is not None else None,
            data=request.form,
            headers=headers,
            timeout=self.timeout,
        )


def _answer(response: httpx.Response) -> ApiResponse:
    return ApiResponse(response.status_code, header_dict(response.headers), decode_body(response))


# --- resource wrappers ---------------------------------------------------------------------


class _SyncResource:
    def __init__(self, client: Client, plans: Any) -> None:
        self._client = client
        self._plans = plans


class _AsyncResource:
    def __init__(self, client: AsyncClient, plans: Any) -> None:
        self._client = client
        self._plans = plans


def _cid_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    return str(kwargs["cid"] if "cid" in kwargs else args[0])


def _sync(
    op: Callable[Concatenate[S, P], Plan[R]], *, chained: bool = False
) -> Callable[Concatenate[_SyncResource, P], R]:
    @functools.wraps(op)
    def call(self: _SyncResource, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if not chained:
            return self._client._run(op(self._plans, *args, **kwargs))
        with self._client._chain_lock(_cid_of(args, kwargs)):
            return self._client._run(op(self._plans, *args, **kwargs))

    return call


def _async(
    op: Callable[Concatenate[S, P], Plan[R]], *, chained: bool = False
) -> Callable[Concatenate[_AsyncResource, P], Awaitable[R]]:
    @functools.wraps(op)
    async def call(self: _AsyncResource, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if not chained:
            return await self._client._run(op(self._plans, *args, **kwargs))
        async with self._client._chain_lock(_cid_of(args, kwargs)):
            return await self._client._run(op(self._plans, *args, **kwargs))

    return call


def _sync_list(
    op: Callable[Concatenate[S, P], Paged[T]],
) -> Callable[Concatenate[_SyncResource, P], SyncPager[T]]:
    @functools.wraps(op)
    def call(self: _SyncResource, /, *args: P.args, **kwargs: P.kwargs) -> SyncPager[T]:
        return SyncPager(self._client, op(self._plans, *args, **kwargs))

    return call


def _async_list(
    op: Callable[Concatenate[S, P], Paged[T]],
) -> Callable[Concatenate[_AsyncResource, P], AsyncPager[T]]:
    @functools.wraps(op)
    def call(self: _AsyncResource, /, *args: P.args, **kwargs: P.kwargs) -> AsyncPager[T]:
        return AsyncPager(self._client, op(self._plans, *args, **kwargs))

    return call


class SyncPager(Generic[T]):
    """A list call: iterate it for every item of every page (pages are fetched lazily)."""

    def __init__(self, client: Client, paged: Paged[T]) -> None:
        self._client = client
        self._paged = paged

    def first_page(self) -> models.Page[T]:
        """Only the first page."""
        return self._client._run(self._paged.fetch(None))

    def pages(self) -> Iterator[models.Page[T]]:
        """Page after page until the last."""
        cursor: str | None = None
        while True:
            page = self._client._run(self._paged.fetch(cursor))
            yield page
            if not page.has_more or page.next_cursor is None:
                return
            cursor = page.next_cursor

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from page.data

    def to_list(self) -> list[T]:
        """Every item, all pages."""
        return list(self)


class AsyncPager(Generic[T]):
    """A list call: ``async for`` over every item of every page (fetched lazily)."""

    def __init__(self, client: AsyncClient, paged: Paged[T]) -> None:
        self._client = client
        self._paged = paged

    async def first_page(self) -> models.Page[T]:
        """Only the first page."""
        return await self._client._run(self._paged.fetch(None))

    async def pages(self) -> AsyncIterator[models.Page[T]]:
        """Page after page until the last."""
        cursor: str | None = None
        while True:
            page = await self._client._run(self._paged.fetch(cursor))
            yield page
            if not page.has_more or page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page.data:
                yield item

    async def to_list(self) -> list[T]:
        """Every item, all pages."""
        return [item async for item in self]


# One class per resource and client flavour; the bodies are the plans (docstrings included).


class Parties(_SyncResource):
    register = _sync(PartyPlans.register)
    me = _sync(PartyPlans.me)
    rotate_key = _sync(PartyPlans.rotate_key)


class AsyncParties(_AsyncResource):
    register = _async(PartyPlans.register)
    me = _async(PartyPlans.me)
    rotate_key = _async(PartyPlans.rotate_key)


class Invitations(_SyncResource):
    create = _sync(InvitationPlans.create)
    list = _sync_list(InvitationPlans.list)
    lookup = _sync(InvitationPlans.lookup)
    accept = _sync(InvitationPlans.accept)
    decline = _sync(InvitationPlans.decline)


class AsyncInvitations(_AsyncResource):
    create = _async(InvitationPlans.create)
    list = _async_list(InvitationPlans.list)
    lookup = _async(InvitationPlans.lookup)
    accept = _async(InvitationPlans.accept)
    decline = _async(InvitationPlans.decline)


class Connections(_SyncResource):
    list = _sync_list(ConnectionPlans.list)
    get = _sync(ConnectionPlans.get)
    log = _sync_list(ConnectionPlans.log)
    verify = _sync(ConnectionPlans.verify)
    sever = _sync(ConnectionPlans.sever, chained=True)


class AsyncConnections(_AsyncResource):
    list = _async_list(ConnectionPlans.list)
    get = _async(ConnectionPlans.get)
    log = _async_list(ConnectionPlans.log)
    verify = _async(ConnectionPlans.verify)
    sever = _async(ConnectionPlans.sever, chained=True)


class Grants(_SyncResource):
    issue = _sync(GrantPlans.issue, chained=True)
    amend = _sync(GrantPlans.amend, chained=True)
    revoke = _sync(GrantPlans.revoke, chained=True)
    list = _sync(GrantPlans.list)
    receipt = _sync(GrantPlans.receipt)


class AsyncGrants(_AsyncResource):
    issue = _async(GrantPlans.issue, chained=True)
    amend = _async(GrantPlans.amend, chained=True)
    revoke = _async(GrantPlans.revoke, chained=True)
    list = _async(GrantPlans.list)
    receipt = _async(GrantPlans.receipt)


class Mutes(_SyncResource):
    set = _sync(MutePlans.set, chained=True)
    clear = _sync(MutePlans.clear, chained=True)


class AsyncMutes(_AsyncResource):
    set = _async(MutePlans.set, chained=True)
    clear = _async(MutePlans.clear, chained=True)


class Favours(_SyncResource):
    request = _sync(FavourPlans.request, chained=True)
    accept = _sync(FavourPlans.accept, chained=True)
    decline = _sync(FavourPlans.decline, chained=True)
    withdraw = _sync(FavourPlans.withdraw, chained=True)
    fulfil = _sync(FavourPlans.fulfil, chained=True)
    acknowledge = _sync(FavourPlans.acknowledge, chained=True)
    list = _sync(FavourPlans.list)
    ledger = _sync(FavourPlans.ledger)


class AsyncFavours(_AsyncResource):
    request = _async(FavourPlans.request, chained=True)
    accept = _async(FavourPlans.accept, chained=True)
    decline = _async(FavourPlans.decline, chained=True)
    withdraw = _async(FavourPlans.withdraw, chained=True)
    fulfil = _async(FavourPlans.fulfil, chained=True)
    acknowledge = _async(FavourPlans.acknowledge, chained=True)
    list = _async(FavourPlans.list)
    ledger = _async(FavourPlans.ledger)


class Messages(_SyncResource):
    send = _sync(MessagePlans.send, chained=True)
    inbox = _sync_list(MessagePlans.inbox)
    ack = _sync(MessagePlans.ack)
    broadcast = _sync(MessagePlans.broadcast)


class AsyncMessages(_AsyncResource):
    send = _async(MessagePlans.send, chained=True)
    inbox = _async_list(MessagePlans.inbox)
    ack = _async(MessagePlans.ack)
    broadcast = _async(MessagePlans.broadcast)


class Account(_SyncResource):
    export = _sync(AccountPlans.export)
    delete = _sync(AccountPlans.delete)


class AsyncAccount(_AsyncResource):
    export = _async(AccountPlans.export)
    delete = _async(AccountPlans.delete)


class WebhookEndpoints(_SyncResource):
    create = _sync(WebhookEndpointPlans.create)
    list = _sync_list(WebhookEndpointPlans.list)
    get = _sync(WebhookEndpointPlans.get)
    delete = _sync(WebhookEndpointPlans.delete)
    rotate_secret = _sync(WebhookEndpointPlans.rotate_secret)
    disable = _sync(WebhookEndpointPlans.disable)
    enable = _sync(WebhookEndpointPlans.enable)
    deliveries = _sync_list(WebhookEndpointPlans.deliveries)
    replay = _sync(WebhookEndpointPlans.replay)
    keys = _sync(WebhookEndpointPlans.keys)


class AsyncWebhookEndpoints(_AsyncResource):
    create = _async(WebhookEndpointPlans.create)
    list = _async_list(WebhookEndpointPlans.list)
    get = _async(WebhookEndpointPlans.get)
    delete = _async(WebhookEndpointPlans.delete)
    rotate_secret = _async(WebhookEndpointPlans.rotate_secret)
    disable = _async(WebhookEndpointPlans.disable)
    enable = _async(WebhookEndpointPlans.enable)
    deliveries = _async_list(WebhookEndpointPlans.deliveries)
    replay = _async(WebhookEndpointPlans.replay)
    keys = _async(WebhookEndpointPlans.keys)


class Events(_SyncResource):
    list = _sync_list(EventPlans.list)

    def stream(
        self,
        *,
        after: int | None = None,
        reconnect: bool = True,
        max_reconnects: int | None = None,
        read_timeout: float = 60.0,
    ) -> Iterator[models.Event]:
        """Your events as they happen (Server-Sent Events on ``GET /v1/events``).

        Starts after event ``after`` (``None``: from the server's default). When the
        connection drops, it reconnects with ``Last-Event-ID`` set to the last event it
        yielded, so no event is skipped or repeated; give up after ``max_reconnects``
        consecutive failures (``None``: never) or at once with ``reconnect=False``.
        """
        client = self._client
        last = str(after) if after is not None else None
        failures = 0
        while True:
            try:
                for event, seen in client._stream_once(last, read_timeout):
                    failures, last = 0, seen
                    yield event
            except errors.APIConnectionError:
                if not reconnect:
                    raise
            if not reconnect:
                return
            failures += 1
            if max_reconnects is not None and failures > max_reconnects:
                raise errors.APIConnectionError("event stream: too many reconnects")
            client._sleep(client.retry.backoff(min(failures - 1, 6), client._rng))


class AsyncEvents(_AsyncResource):
    list = _async_list(EventPlans.list)

    async def stream(
        self,
        *,
        after: int | None = None,
        reconnect: bool = True,
        max_reconnects: int | None = None,
        read_timeout: float = 60.0,
    ) -> AsyncIterator[models.Event]:
        """Your events as they happen (Server-Sent Events on ``GET /v1/events``).

        Starts after event ``after`` (``None``: from the server's default). When the
        connection drops, it reconnects with ``Last-Event-ID`` set to the last event it
        yielded, so no event is skipped or repeated; give up after ``max_reconnects``
        consecutive failures (``None``: never) or at once with ``reconnect=False``.
        """
        client = self._client
        last = str(after) if after is not None else None
        failures = 0
        while True:
            try:
                async for event, seen in client._stream_once(last, read_timeout):
                    failures, last = 0, seen
                    yield event
            except errors.APIConnectionError:
                if not reconnect:
                    raise
            if not reconnect:
                return
            failures += 1
            if max_reconnects is not None and failures > max_reconnects:
                raise errors.APIConnectionError("event stream: too many reconnects")
            await client._sleep(client.retry.backoff(min(failures - 1, 6), client._rng))


def _event_of(data: str) -> models.Event:
    try:
        return models.Event.model_validate_json(data)
    except ValueError:
        raise errors.ResponseFormatError("event data is not an Event") from None


class Client(_Base):
    """A Rapport client with blocking I/O.

    ``base_url`` defaults to ``$RAPPORT_SERVER_URL``; the key comes from ``key``,
    ``key_file`` (mode 0600) or ``$RAPPORT_PRIVATE_KEY``. Every protocol object is signed
    locally; access tokens are obtained and refreshed with the key. Failed requests are
    retried per ``retry`` with one ``Idempotency-Key`` per call. ``clock`` (integer UTC
    seconds), ``seed`` (retry jitter) and ``transport`` (e.g. ``httpx.MockTransport``) are
    there for tests.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        key: SigningKey | None = None,
        key_file: str | os.PathLike[str] | Path | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        clock: Clock = system_clock,
        public_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            base_url, key, key_file, timeout, retry or RetryPolicy(), clock, public_url, seed,
            headers,
        )  # fmt: skip
        self._http = http_client or httpx.Client(transport=transport, timeout=self.timeout)
        self._owns_http = http_client is None
        self._sleep = sleep
        self._token_lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self.parties = Parties(self, PartyPlans(self._ops))
        self.invitations = Invitations(self, InvitationPlans(self._ops))
        self.connections = Connections(self, ConnectionPlans(self._ops))
        self.grants = Grants(self, GrantPlans(self._ops))
        self.mutes = Mutes(self, MutePlans(self._ops))
        self.favours = Favours(self, FavourPlans(self._ops))
        self.messages = Messages(self, MessagePlans(self._ops))
        self.account = Account(self, AccountPlans(self._ops))
        self.events = Events(self, EventPlans(self._ops))
        self.webhook_endpoints = WebhookEndpoints(self, WebhookEndpointPlans(self._ops))

    def close(self) -> None:
        """Close the HTTP connections (when the client created them)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _chain_lock(self, cid: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(cid, threading.Lock())

    def _run(self, plan: Plan[R]) -> R:
        try:
            request = next(plan)
            while True:
                try:
                    answer = self._send(request)
                except errors.RapportError as exc:
                    request = plan.throw(exc)
                    continue
                request = plan.send(answer)
        except StopIteration as done:
            result: R = done.value
            return result

    def _ensure_token(self) -> None:
        with self._token_lock:
            if not self._token_fresh():
                self._keep_token(self._run(self._ops.token()))

    def _send(self, request: ApiRequest) -> ApiResponse:
        idem = str(uuid.uuid4()) if request.is_write else None
        attempt, refreshed = 0, False
        while True:
            if attempt and request.rebuild is not None:
                request = request.rebuild()
            if request.auth:
                self._ensure_token()
            try:
                answer = _answer(self._http.send(self._build(self._http, request, idem)))
            except httpx.TransportError as exc:
                delay = self.retry.delay_for(attempt, None, self._rng)
                if delay is None:
                    raise transport_error(exc) from exc
                self._sleep(delay)
                attempt += 1
                continue
            if answer.status == 401 and request.auth and not refreshed:
                refreshed, self._token = True, None
                continue
            delay = self.retry.delay_for(attempt, answer, self._rng)
            if delay is None:
                return answer
            self._sleep(delay)
            attempt += 1

    def _stream_once(
        self, last: str | None, read_timeout: float
    ) -> Iterator[tuple[models.Event, str | None]]:
        for refreshed in (False, True):
            self._ensure_token()
            headers = {**self._headers, "Accept": "text/event-stream"}
            headers["Authorization"] = f"Bearer {self._token}"
            if last is not None:
                headers["Last-Event-ID"] = last
            timeout = httpx.Timeout(self.timeout.connect or 10.0, read=read_timeout)
            try:
                with self._http.stream(
                    "GET", self.base_url + "/v1/events", headers=headers, timeout=timeout
                ) as response:
                    if response.status_code == 401 and not refreshed:
                        self._token = None
                        continue
                    if response.status_code != 200:
                        response.read()
                        answer = _answer(response)
                        if answer.status >= 500 or answer.status in (408, 429):
                            raise errors.APIConnectionError(f"event stream: HTTP {answer.status}")
                        raise answer.error()
                    decoder = SSEDecoder(last)
                    for line in response.iter_lines():
                        sse = decoder.feed(line)
                        if sse is not None:
                            event = _event_of(sse.data)
                            yield event, sse.id or str(event.id)
                    return
            except httpx.TransportError as exc:
                raise transport_error(exc) from exc


class AsyncClient(_Base):
    """A Rapport client for asyncio: the same resources as :class:`Client`, awaited.

    See :class:`Client` for the arguments; ``sleep`` is a coroutine function here.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        key: SigningKey | None = None,
        key_file: str | os.PathLike[str] | Path | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        clock: Clock = system_clock,
        public_url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        seed: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            base_url, key, key_file, timeout, retry or RetryPolicy(), clock, public_url, seed,
            headers,
        )  # fmt: skip
        self._http = http_client or httpx.AsyncClient(transport=transport, timeout=self.timeout)
        self._owns_http = http_client is None
        self._sleep = sleep
        self._token_lock = asyncio.Lock()
        self._locks: dict[str, asyncio.Lock] = {}
        self.parties = AsyncParties(self, PartyPlans(self._ops))
        self.invitations = AsyncInvitations(self, InvitationPlans(self._ops))
        self.connections = AsyncConnections(self, ConnectionPlans(self._ops))
        self.grants = AsyncGrants(self, GrantPlans(self._ops))
        self.mutes = AsyncMutes(self, MutePlans(self._ops))
        self.favours = AsyncFavours(self, FavourPlans(self._ops))
        self.messages = AsyncMessages(self, MessagePlans(self._ops))
        self.account = AsyncAccount(self, AccountPlans(self._ops))
        self.events = AsyncEvents(self, EventPlans(self._ops))
        self.webhook_endpoints = AsyncWebhookEndpoints(self, WebhookEndpointPlans(self._ops))

    async def aclose(self) -> None:
        """Close the HTTP connections (when the client created them)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _chain_lock(self, cid: str) -> asyncio.Lock:
        return self._locks.setdefault(cid, asyncio.Lock())

    async def _run(self, plan: Plan[R]) -> R:
        try:
            request = next(plan)
            while True:
                try:
                    answer = await self._send(request)
                except errors.RapportError as exc:
                    request = plan.throw(exc)
                    continue
                request = plan.send(answer)
        except StopIteration as done:
            result: R = done.value
            return result

    async def _ensure_token(self) -> None:
        async with self._token_lock:
            if not self._token_fresh():
                self._keep_token(await self._run(self._ops.token()))

    async def _send(self, request: ApiRequest) -> ApiResponse:
        idem = str(uuid.uuid4()) if request.is_write else None
        attempt, refreshed = 0, False
        while True:
            if attempt and request.rebuild is not None:
                request = request.rebuild()
            if request.auth:
                await self._ensure_token()
            try:
                answer = _answer(await self._http.send(self._build(self._http, request, idem)))
            except httpx.TransportError as exc:
                delay = self.retry.delay_for(attempt, None, self._rng)
                if delay is None:
                    raise transport_error(exc) from exc
                await self._sleep(delay)
                attempt += 1
                continue
            if answer.status == 401 and request.auth and not refreshed:
                refreshed, self._token = True, None
                continue
            delay = self.retry.delay_for(attempt, answer, self._rng)
            if delay is None:
                return answer
            await self._sleep(delay)
            attempt += 1

    async def _stream_once(
        self, last: str | None, read_timeout: float
    ) -> AsyncIterator[tuple[models.Event, str | None]]:
        for refreshed in (False, True):
            await self._ensure_token()
            headers = {**self._headers, "Accept": "text/event-stream"}
            headers["Authorization"] = f"Bearer {self._token}"
            if last is not None:
                headers["Last-Event-ID"] = last
            timeout = httpx.Timeout(self.timeout.connect or 10.0, read=read_timeout)
            try:
                async with self._http.stream(
                    "GET", self.base_url + "/v1/events", headers=headers, timeout=timeout
                ) as response:
                    if response.status_code == 401 and not refreshed:
                        self._token = None
                        continue
                    if response.status_code != 200:
                        await response.aread()
                        answer = _answer(response)
                        if answer.status >= 500 or answer.status in (408, 429):
                            raise errors.APIConnectionError(f"event stream: HTTP {answer.status}")
                        raise answer.error()
                    decoder = SSEDecoder(last)
                    async for line in response.aiter_lines():
                        sse = decoder.feed(line)
                        if sse is not None:
                            event = _event_of(sse.data)
                            yield event, sse.id or str(event.id)
                    return
            except httpx.TransportError as exc:
                raise transport_error(exc) from exc
