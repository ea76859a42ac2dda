"""The long-lived objects one server process holds, created in the app's lifespan."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

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


@dataclass
class PartyCache:
    """Short-lived cache of (party id → current did, kind) for token checks.

    An entry serves for ``ttl`` seconds after it was read from the database (a caller may
    accept an older one, see ``get``); this instance drops an entry at once when it changes
    the party (rotation, deletion), other instances see the change within that age.
    """

    ttl: float = 2.0
    _entries: dict[str, tuple[float, str, str]] = field(default_factory=dict)

    def get(self, party_id: str, max_age: float | None = None) -> tuple[str, str] | None:
        """(did, kind) if read at most ``max_age`` (default ``ttl``) seconds ago."""
        hit = self._entries.get(party_id)
        if hit is None or time.monotonic() - hit[0] > (self.ttl if max_age is None else max_age):
            return None
        return hit[1], hit[2]

    def put(self, party_id: str, did: str, kind: str) -> None:
        if len(self._entries) > 100_000:
            self._entries.clear()
        self._entries[party_id] = (time.monotonic(), did, kind)

    def drop(self, party_id: str) -> None:
        self._entries.pop(party_id, None)


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
