"""A private event loop and app instances for tests that drive the server from a thread.

Hypothesis state machines and schemathesis are synchronous; the live server is not. A
:class:`LoopThread` owns an event loop in the calling (worker) thread, so a synchronous rule
can ``run`` a coroutine; :class:`Instances` starts and stops app instances on one database
(a "restart" is a new app instance on the same data).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import httpx

from tests.helpers import FakeClock, live_server

T = TypeVar("T")


class LoopRunner:
    """An event loop owned by the current thread; ``run`` a coroutine to completion."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.http = self.run(self._client())

    @staticmethod
    async def _client() -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=30)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.run(self.http.aclose())
        self.loop.close()


@contextlib.asynccontextmanager
async def app_instance(
    database_url: str,
    clock: FakeClock,
    *,
    port: int | None = None,
    body_timeout: float | None = None,
    **settings: Any,
) -> AsyncIterator[str]:
    """:func:`tests.helpers.live_server` without the webhook worker (not under test here),
    optionally with a shorter request-body deadline."""
    settings.setdefault("run_worker", False)

    def prepare(app: Any) -> None:
        from rapport_server.middleware import BodyLimitMiddleware

        for middleware in app.user_middleware:
            if middleware.cls is BodyLimitMiddleware:
                middleware.kwargs["body_timeout"] = body_timeout

    async with live_server(
        database_url,
        clock,
        port=port,
        prepare=prepare if body_timeout is not None else None,
        **settings,
    ) as base:
        yield base


class Instances:
    """App instances on one database, started from a :class:`LoopRunner`'s loop."""

    def __init__(self, runner: LoopRunner, database_url: str, clock: FakeClock) -> None:
        self.runner = runner
        self.database_url = database_url
        self.clock = clock
        self._stacks: list[contextlib.AsyncExitStack] = []
        self.started = 0

    def start(self, *, port: int | None = None, **settings: Any) -> str:
        """A new instance (on ``port`` if given); returns its base URL."""

        async def go() -> str:
            stack = contextlib.AsyncExitStack()
            base = await stack.enter_async_context(
                app_instance(self.database_url, self.clock, port=port, **settings)
            )
            self._stacks.append(stack)
            return base

        self.started += 1
        return self.runner.run(go())

    @property
    def running(self) -> int:
        return len(self._stacks)

    def stop_oldest(self) -> None:
        if self._stacks:
            self.runner.run(self._stacks.pop(0).aclose())

    def stop_all(self) -> None:
        while self._stacks:
            self.stop_oldest()
