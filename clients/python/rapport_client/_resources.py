"""The resource namespaces of both clients, and the pagers of list calls.

Each namespace method wraps one plan of :mod:`rapport_client._plans` (its signature and
docstring come from the plan): the blocking flavour runs it with ``Client._run``, the
async flavour awaits ``AsyncClient._run``. Calls that extend a connection's hash chain are
serialised per connection within one client.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar

from . import errors, models
from ._account_plans import AccountPlans, EventPlans, WebhookEndpointPlans
from ._core import Plan
from ._exchange_plans import FavourPlans, MessagePlans
from ._operations import Paged
from ._plans import ConnectionPlans, GrantPlans, InvitationPlans, MutePlans, PartyPlans

if TYPE_CHECKING:
    from ._client import AsyncClient, Client

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")
T = TypeVar("T")


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


def _cids_of(messages: Any) -> list[str]:
    return sorted({m.cid for m in messages})


def _sync_batch(
    op: Callable[Concatenate[S, P], Plan[R]],
) -> Callable[Concatenate[_SyncResource, P], R]:
    """Like ``_sync(chained=True)`` for a call on several chains (the first argument's
    ``cid`` s): their locks are taken in cid order, so two such calls cannot deadlock."""

    @functools.wraps(op)
    def call(self: _SyncResource, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with contextlib.ExitStack() as stack:
            for cid in _cids_of(kwargs["messages"] if "messages" in kwargs else args[0]):
                stack.enter_context(self._client._chain_lock(cid))
            return self._client._run(op(self._plans, *args, **kwargs))

    return call


def _async_batch(
    op: Callable[Concatenate[S, P], Plan[R]],
) -> Callable[Concatenate[_AsyncResource, P], Awaitable[R]]:
    @functools.wraps(op)
    async def call(self: _AsyncResource, /, *args: P.args, **kwargs: P.kwargs) -> R:
        async with contextlib.AsyncExitStack() as stack:
            for cid in _cids_of(kwargs["messages"] if "messages" in kwargs else args[0]):
                await stack.enter_async_context(self._client._chain_lock(cid))
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
    send_batch = _sync_batch(MessagePlans.send_batch)
    inbox = _sync_list(MessagePlans.inbox)
    ack = _sync(MessagePlans.ack)
    broadcast = _sync(MessagePlans.broadcast)


class AsyncMessages(_AsyncResource):
    send = _async(MessagePlans.send, chained=True)
    send_batch = _async_batch(MessagePlans.send_batch)
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
