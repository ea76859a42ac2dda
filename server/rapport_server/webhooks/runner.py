"""A delivery worker as its own process (``rapport worker``), without the HTTP API."""

from __future__ import annotations

import asyncio
import signal

import structlog

from ..config import Settings
from ..db import create_engine, sessionmaker, writer_engine
from ..domain import system_clock
from ..events.notify import notifier_for
from ..services import load_secret
from .signing import ServerSigner
from .worker import build_worker

log = structlog.get_logger(__name__)


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Deliver webhooks until SIGINT/SIGTERM (or ``stop`` is set)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    engine = create_engine(settings.database_url, pool_size=4)
    maker = sessionmaker(engine)
    signer = ServerSigner(await load_secret(maker, "webhook_signing_key", system_clock))
    notifier = notifier_for(settings.database_url)
    await notifier.start()
    worker = build_worker(
        settings, sessionmaker(writer_engine(engine)), notifier, signer, reader=maker
    )
    await worker.start()
    log.info("webhook_worker_started")
    try:
        await stop.wait()
    finally:
        await worker.stop()
        await notifier.stop()
        await engine.dispose()
        log.info("webhook_worker_stopped", attempts=worker.attempts, delivered=worker.delivered)
