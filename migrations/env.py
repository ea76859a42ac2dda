"""Alembic environment: async engine, our metadata, URL from the caller or settings."""

from __future__ import annotations

import asyncio

from alembic import context
from rapport_server import tables  # noqa: F401  (registers every table on the metadata)
from rapport_server.config import Settings
from rapport_server.db import Base, create_engine
from sqlalchemy.engine import Connection

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    given = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    return str(given) if given else Settings().database_url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _online() -> None:
    engine = create_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_online())
