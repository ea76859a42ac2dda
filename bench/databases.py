"""Fresh databases for a benchmark run: a new SQLite file, or a new PostgreSQL database
created for the run and dropped afterwards."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


async def _pg_admin(url: str, statement: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password,
        database=parsed.database or "postgres",
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def pg_reachable(url: str) -> bool:
    """True when the PostgreSQL server behind ``url`` accepts a connection."""
    try:
        asyncio.run(_pg_admin(url, "SELECT 1"))
    except Exception:
        return False
    return True


@contextmanager
def fresh_database(backend: str, workdir: Path, pg_url: str, label: str) -> Iterator[str]:
    """Yield an async SQLAlchemy URL of an empty database; remove it afterwards."""
    if backend == "sqlite":
        path = workdir / f"{label}-{secrets.token_hex(4)}.db"
        try:
            yield f"sqlite+aiosqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    name = f"rapport_bench_{label}_{secrets.token_hex(4)}"
    asyncio.run(_pg_admin(pg_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_pg_admin(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
