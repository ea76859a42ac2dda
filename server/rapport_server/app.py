"""The FastAPI application factory."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from . import __version__, problems
from .account.endpoints import router as account_router
from .auth.endpoints import router as auth_router
from .auth.tokens import AccessTokens
from .config import Settings
from .connections.endpoints import router as connections_router
from .connections.states import StateCache
from .db import WalCheckpointer, create_engine, sessionmaker, writer_engine
from .domain import Clock, system_clock
from .events.endpoints import router as events_router
from .events.notify import notifier_for
from .health.endpoints import router as health_router
from .invitations.endpoints import router as invitations_router
from .logs import configure_logging
from .messages.endpoints import SendRoute
from .messages.endpoints import router as messages_router
from .messages.sending import Sends
from .metrics import router as metrics_router
from .middleware import BodyLimitMiddleware, RequestIdMiddleware
from .parties.endpoints import router as parties_router
from .services import Services, load_secret
from .sweeper import Sweeper
from .webapp import mount_webapp
from .webhooks.endpoints import keys_router as webhook_keys_router
from .webhooks.endpoints import router as webhooks_router
from .webhooks.signing import ServerSigner
from .webhooks.worker import build_worker
from .writes import WriteBatcher

DESCRIPTION = """Rapport: consent-based, two-way connections between businesses and people.

Every state-changing call carries a protocol object signed by the caller; the server checks
it against the protocol's rules before it stores or delivers anything. Errors are RFC 9457
problem+json with a stable `code`."""


async def _build_routes(app: FastAPI) -> None:
    """Walk every route once before serving.

    FastAPI builds an included router's route table (each route's dependency graph, from
    its signature) when a request first walks it — about 0.5 s of CPU for this app, paid
    by the first clients (bench/PROFILE.md). A request for a path no route has walks them
    all; its 404 goes nowhere.
    """
    path = "/.well-known/rapport-build-routes"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
        "app": app,
    }

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: object) -> None:
        return None

    with contextlib.suppress(Exception):  # a 404 is the expected outcome
        await app.router(scope, receive, send)


_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


GC_THRESHOLD = (10_000, 10, 10)
"""The cyclic collector's thresholds while the app runs. With CPython's default (700
allocations net of frees), a send burst crossed the first threshold every few requests:
~1,200 young and ~100 middle collections per 15,000 sends, about 0.5 s of stopped event
loop, and full passes of 7-9 ms. At 10,000 the same load made ~100 and 10 and no full pass;
send throughput +25-30% and server CPU per send -12% in alternating runs (bench/PROFILE.md).
Cyclic garbage still goes; it waits a little longer."""


def create_app(settings: Settings | None = None, *, clock: Clock = system_clock) -> FastAPI:
    """Build the app. ``clock`` is the only time source the server uses (tests pass one)."""
    settings = settings or Settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if (
            settings.migrate_on_start
            if settings.migrate_on_start is not None
            else settings.is_sqlite
        ):
            from .migrate import upgrade

            await upgrade(settings.database_url)
        engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
        maker = sessionmaker(engine)
        checkpointer = WalCheckpointer(engine)
        await checkpointer.start()
        secret = settings.secret_key or await load_secret(maker, "access_token_key", clock)
        signer = ServerSigner(await load_secret(maker, "webhook_signing_key", clock))
        notifier = notifier_for(settings.database_url)
        await notifier.start()
        writer = sessionmaker(writer_engine(engine))
        batcher = WriteBatcher(writer, max_batch=settings.max_batch, notifier=notifier)
        checkpointer.writer = batcher
        await batcher.start()
        # PostgreSQL writes the chunks of a broadcast in parallel transactions (PROFILE.md,
        # session 6); SQLite has one writer, the batcher.
        lanes = (
            []
            if settings.is_sqlite
            else [
                WriteBatcher(writer, max_batch=1, notifier=notifier)
                for _ in range(settings.broadcast_writers)
            ]
        )
        for lane in lanes:
            await lane.start()
        sweeper = Sweeper(
            batcher,
            clock,
            idempotency_ttl=settings.idempotency_ttl,
            assertion_grace=settings.clock_skew_seconds,
        )
        await sweeper.start()
        worker = (
            build_worker(settings, writer, notifier, signer, reader=maker)
            if settings.run_worker
            else None
        )
        if worker is not None:
            await worker.start()
        app.state.services = Services(
            settings=settings,
            engine=engine,
            sessionmaker=maker,
            batcher=batcher,
            clock=clock,
            tokens=AccessTokens(secret, settings.public_url, settings.access_token_ttl),
            notifier=notifier,
            webhook_signer=signer,
            sends=Sends(StateCache(settings.state_cache)),
            broadcast_lanes=lanes,
        )
        app.state.worker = worker
        app.state.checkpointer = checkpointer
        app.state.sweeper = sweeper
        await _build_routes(app)
        # Everything made so far (the app, its routes and models, the engine, SQLAlchemy's
        # and pydantic's tables) lives as long as the process: keep it out of the cyclic
        # collector's full passes. Each pass walked it all and stopped the event loop for
        # 60-120 ms, several times a minute under load: the send latency's p99 (PROFILE.md).
        gc.collect()
        gc.freeze()
        threshold = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLD)
        try:
            yield
        finally:
            gc.set_threshold(*threshold)
            gc.unfreeze()
            await notifier.stop()  # ends event streams
            if worker is not None:
                await worker.stop()
            await sweeper.stop()
            for lane in lanes:
                await lane.stop()
            await batcher.stop()
            await checkpointer.stop()
            await app.state.services.parties.close()
            await engine.dispose()
            checkpointer.release()

    app = FastAPI(
        title="Rapport",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        # FastAPI's native OpenTelemetry looked up the environment on every request (~2%
        # of a send's CPU); on only when asked for (RAPPORT_TELEMETRY).
        telemetry=None
        if settings.telemetry
        else {"tracing": False, "metrics": False, "logs": False},
    )
    problems.install(app)
    # FastAPI matches a request against the routes in this order, at a measurable cost per
    # route tried (bench/PROFILE.md): the hot routes (send, inbox, events) come first.
    for router in (
        messages_router,
        events_router,
        health_router,
        auth_router,
        parties_router,
        invitations_router,
        connections_router,
        webhooks_router,
        webhook_keys_router,
        account_router,
        metrics_router,
    ):
        app.include_router(router)
    mount_webapp(app)  # the person's web app at /app (static files only)
    app.add_middleware(SendRoute)  # the send, served in front of FastAPI's routing
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    return app
