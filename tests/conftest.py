"""Test legs: RAPPORT_TEST_DB=sqlite (default) or postgres (RAPPORT_TEST_PG_URL).

Each session gets a fresh database: a temporary SQLite file, or a new PostgreSQL database
created for the run and dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def backend() -> str:
    return os.environ.get("RAPPORT_TEST_DB", "sqlite")


async def _pg_admin(url: str, statement: str) -> None:
    import asyncpg

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.host or "127.0.0.1", port=parsed.port or 5432,
        user=parsed.username or "postgres", password=parsed.password,
        database=parsed.database or "test",
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A URL to an empty database for this test session."""
    if backend() == "postgres":
        from sqlalchemy.engine import make_url

        admin = os.environ.get("RAPPORT_TEST_PG_URL", DEFAULT_PG)
        name = "rapport_test_" + secrets.token_hex(6)
        await _pg_admin(admin, f'CREATE DATABASE "{name}"')
        try:
            yield make_url(admin).set(database=name).render_as_string(hide_password=False)
        finally:
            await _pg_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        path: Path = tmp_path_factory.mktemp("db") / "rapport.db"
        yield f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def fresh_database_url(tmp_path: Path) -> Iterator[str]:
    """A second, empty database per test (for migration tests); SQLite file or PG db."""
    if backend() == "postgres":
        import asyncio

        from sqlalchemy.engine import make_url

        admin = os.environ.get("RAPPORT_TEST_PG_URL", DEFAULT_PG)
        name = "rapport_mig_" + secrets.token_hex(6)
        asyncio.run(_pg_admin(admin, f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin).set(database=name).render_as_string(hide_password=False)
        finally:
            asyncio.run(_pg_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
