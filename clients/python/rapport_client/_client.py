"""``Client`` and ``AsyncClient``: the same resources, driven with blocking I/O or ``await``."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeVar

import httpx
from rapport_protocol import SigningKey

from . import errors, models
from ._account_plans import AccountPlans, EventPlans, WebhookEndpointPlans
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
from ._exchange_plans import FavourPlans, MessagePlans
from ._operations import Operations
from ._plans import ConnectionPlans, GrantPlans, InvitationPlans, MutePlans, PartyPlans
from ._resources import (
    Account,
    AsyncAccount,
    AsyncConnections,
    AsyncEvents,
    AsyncFavours,
    AsyncGrants,
    AsyncInvitations,
    AsyncMessages,
    AsyncMutes,
    AsyncParties,
    AsyncWebhookEndpoints,
    Connections,
    Events,
    Favours,
    Grants,
    Invitations,
    Messages,
    Mutes,
    Parties,
    WebhookEndpoints,
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
