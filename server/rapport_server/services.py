"""The long-lived objects one server process holds, created in the app's lifespan."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from .auth.tokens import AccessTokens
from .config import Settings
from .connections.states import StateCache
from .domain import Clock
from .events.notify import LocalNotifier
from .messages.sending import Sends
from .tables import ServerSecret
from .webhooks.signing import ServerSigner
from .writes import WriteBatcher

log = structlog.get_logger(__name__)

PartyRead = Callable[[], Awaitable[tuple[str, str] | None]]
"""Reads one party's (did, kind) from the database; ``None``: no such (live) party."""


@dataclass
class PartyCache:
    """Short-lived cache of (party id → current did, kind) for token checks.

    An entry serves for ``ttl`` seconds after it was read from the database (a caller may
    accept an older one, see ``get``); this instance drops an entry at once when it changes
    the party (rotation, deletion), other instances see the change within that age.

    Reads go through :meth:`load` (callers waiting for the same party share one read) and
    :meth:`refresh` (the read in the background, while callers go on with the entry they
    have): a caller that accepts old entries refreshes them well before they run out, so
    entries filled together (say, by a burst of new senders) do not all make their next
    requests wait for a read in the same instant (bench/PROFILE.md, session 21).
    """

    ttl: float = 2.0
    clock: Callable[[], float] = time.monotonic
    _entries: dict[str, tuple[float, str, str]] = field(default_factory=dict)
    _reads: dict[str, asyncio.Task[tuple[str, str] | None]] = field(default_factory=dict)

    def get(self, party_id: str, max_age: float | None = None) -> tuple[str, str] | None:
        """(did, kind) if read at most ``max_age`` (default ``ttl``) seconds ago."""
        hit = self._entries.get(party_id)
        if hit is None or self.clock() - hit[0] > (self.ttl if max_age is None else max_age):
            return None
        return hit[1], hit[2]

    def older_than(self, party_id: str, age: float) -> bool:
        """Whether the entry (if any) was read more than ``age`` seconds ago."""
        hit = self._entries.get(party_id)
        return hit is not None and self.clock() - hit[0] > age

    def put(self, party_id: str, did: str, kind: str) -> None:
        if len(self._entries) > 100_000:
            self._entries.clear()
        self._entries[party_id] = (self.clock(), did, kind)

    def drop(self, party_id: str) -> None:
        self._entries.pop(party_id, None)
        # A read begun before the change may have seen the party as it was: it must not
        # put that back (its callers still get what it read, as they would have anyway).
        self._reads.pop(party_id, None)

    async def load(self, party_id: str, read: PartyRead) -> tuple[str, str] | None:
        """(did, kind) read now (``None``: no such party), into the cache; callers asking
        for the same party meanwhile wait for the same read. A caller that is cancelled
        leaves the read to the others."""
        return await asyncio.shield(self._start(party_id, read))

    def refresh(self, party_id: str, read: PartyRead) -> None:
        """Re-read the party in the background, unless a read of it is under way."""
        self._start(party_id, read)

    def _start(self, party_id: str, read: PartyRead) -> asyncio.Task[tuple[str, str] | None]:
        task = self._reads.get(party_id)
        if task is None:
            task = asyncio.create_task(self._read(party_id, read), name="rapport-party-read")
            self._reads[party_id] = task
            task.add_done_callback(lambda done: self._done(party_id, done))
        return task

    async def _read(self, party_id: str, read: PartyRead) -> tuple[str, str] | None:
        entry = await read()
        if self._reads.get(party_id) is asyncio.current_task():  # not dropped meanwhile
            if entry is None:
                self._entries.pop(party_id, None)
            else:
                self.put(party_id, *entry)
        return entry

    async def close(self) -> None:
        """Stop the reads under way (at shutdown, before the engine goes)."""
        reads = list(self._reads.values())
        self._reads.clear()
        for task in reads:
            task.cancel()
        await asyncio.gather(*reads, return_exceptions=True)

    def _done(self, party_id: str, task: asyncio.Task[tuple[str, str] | None]) -> None:
        if self._reads.get(party_id) is task:
            del self._reads[party_id]
        if not task.cancelled() and task.exception() is not None:
            # Retrieved here so a background refresh that failed is not an unhandled error;
            # a caller waiting in load() gets the exception as well.
            log.warning("party_read_failed", error=type(task.exception()).__name__)


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    batcher: WriteBatcher
    clock: Clock
    tokens: AccessTokens
    notifier: LocalNotifier
    webhook_signer: ServerSigner
    parties: PartyCache = field(default_factory=PartyCache)
    sends: Sends = field(default_factory=lambda: Sends(StateCache()))
    """The send group handler (with its cache of parsed connection states)."""
    broadcast_lanes: list[WriteBatcher] = field(default_factory=list)
    """Writers of broadcast chunks, each committing on its own connection (PostgreSQL);
    empty: chunks go through ``batcher`` (SQLite's one writer)."""


async def load_secret(
    sessionmaker: async_sessionmaker[AsyncSession], name: str, clock: Clock
) -> str:
    """The server secret ``name``, generated once and shared by every instance."""
    async with sessionmaker() as session, session.begin():
        found = await session.get(ServerSecret, name)
        if found is not None:
            return found.value
        dialect = session.get_bind().dialect.name
        insert_fn = pg_insert if dialect == "postgresql" else sqlite_insert
        await session.execute(
            insert_fn(ServerSecret)
            .values(name=name, value=secrets.token_urlsafe(48), created_at=clock())
            .on_conflict_do_nothing()
        )
        value = (
            await session.execute(select(ServerSecret.value).where(ServerSecret.name == name))
        ).scalar_one()
        return str(value)
