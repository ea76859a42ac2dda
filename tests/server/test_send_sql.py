"""The send group's SQLite statements, directly: the compare-and-swap of the states counts
only the rows whose version matched, and the counters' bump returns the new tops.
(PostgreSQL writes a group in one statement, covered by every send test there.)"""

from __future__ import annotations

import pytest
from rapport_server.db import create_engine, sessionmaker, transaction_driver, writer_engine
from rapport_server.messages.send_sql import SendSQL
from sqlalchemy import text

from tests.conftest import backend
from tests.helpers import Actor, connect

pytestmark = pytest.mark.skipif(backend() != "sqlite", reason="SQLite's statements")


async def test_state_swap_counts_matching_versions_and_bump_returns_tops(
    database_url: str, business: Actor, person: Actor
) -> None:
    grant = [{"scope": "message", "topic": "orders"}]
    cids = [await connect(business, person, person_grants=grant) for _ in range(2)]
    engine = create_engine(database_url)
    try:
        async with sessionmaker(writer_engine(engine))() as session, session.begin():
            rows = await session.execute(
                text("SELECT cid, state, status, version FROM connections WHERE cid IN (:a, :b)"),
                {"a": cids[0], "b": cids[1]},
            )
            found = {cid: (state, status, version) for cid, state, status, version in rows}
            tops = await session.execute(
                text("SELECT id, event_seq FROM parties WHERE id IN (:a, :b)"),
                {"a": business.party_id, "b": person.party_id},
            )
            before = dict(tops.all())
            sql = SendSQL(*await transaction_driver(session))
            assert not sql.postgres
            (s0, st0, v0), (s1, st1, v1) = found[cids[0]], found[cids[1]]
            # the second row names a version that is not the stored one
            saved = await sql.save_states(
                [(s0, st0, v0 + 1, 7, cids[0], v0), (s1, st1, v1 + 1, 7, cids[1], v1 + 5)]
            )
            assert saved == 1
            versions = await session.execute(
                text("SELECT cid, version, updated_at FROM connections WHERE cid IN (:a, :b)"),
                {"a": cids[0], "b": cids[1]},
            )
            after = {c: (v, u) for c, v, u in versions}
            assert after[cids[0]] == (v0 + 1, 7)
            assert after[cids[1]][0] == v1  # the stale row is left as it was
            ids = sorted([business.party_id, person.party_id])
            bumped = await sql.bump_parties([(3, ids[0]), (1, ids[1])])
            assert bumped == {ids[0]: before[ids[0]] + 3, ids[1]: before[ids[1]] + 1}
            await session.rollback()
    finally:
        await engine.dispose()
