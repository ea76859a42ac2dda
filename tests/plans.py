"""Asking the database how it would run a statement: does it read a whole table?

SQLite answers ``EXPLAIN QUERY PLAN`` with a line per step: SEARCH is a seek, SCAN (even
USING an index) reads all of a table, and a skip-scan (``ANY(column)``) seeks once for
each value of a leading column. PostgreSQL answers ``EXPLAIN (FORMAT JSON)``; asked with
sequential scans, hash and merge joins priced out, it still picks a whole read where no
index serves the statement's key. Only tables that hold rows are judged there: on an
empty table any index serves as well as another, and it picks among them without regard
to the key.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection


async def price_out_whole_reads(conn: AsyncConnection) -> None:
    """PostgreSQL: make scans and set-at-once joins the last resort on ``conn``."""
    if conn.dialect.name != "sqlite":
        for kind in ("seqscan", "hashjoin", "mergejoin"):
            await conn.exec_driver_sql(f"SET enable_{kind} = off")


async def whole_reads(
    conn: AsyncConnection, statement: str, params: Any, populated: Sequence[str]
) -> list[str]:
    """The steps of ``statement``'s plan that read a whole table or index (on PostgreSQL:
    of the ``populated`` tables). ``params`` as the driver got them."""
    if conn.dialect.name == "sqlite":
        result = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
        return _sqlite_whole_reads([str(row[-1]) for row in result.all()])
    indexes = {
        name: (table, column)
        for name, table, column in (
            await conn.exec_driver_sql(
                "SELECT i.indexrelid::regclass::text, i.indrelid::regclass::text, a.attname "
                "FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = i.indkey[0]"
            )
        ).all()
    }
    result = await conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, params)
    tree = result.scalar_one()[0]["Plan"]
    return list(_pg_whole_reads(tree, indexes, set(populated)))


def _sqlite_whole_reads(plan: list[str]) -> list[str]:
    """SCAN steps of tables (not of the statement's own VALUES rows, nor of a subquery
    or CTE it materialises or runs as a co-routine), and skip-scans."""
    own = {
        line.split()[1]
        for line in plan
        if line.startswith(("MATERIALIZE ", "CO-ROUTINE ")) and len(line.split()) > 1
    }

    def table_scan(words: list[str]) -> bool:
        return words[:1] == ["SCAN"] and len(words) > 1 and words[1] not in own

    return [
        line
        for line in plan
        if "ANY(" in line or (table_scan(line.split()) and "CONSTANT ROW" not in line)
    ]


def _pg_whole_reads(
    node: dict[str, Any], indexes: dict[str, tuple[str, str]], populated: set[str]
) -> Iterator[str]:
    """A scan of a relation with no index condition (a sequential scan, or an index walked
    end to end under a filter), or an index condition that leaves the index's first column
    free (``indexes``: each index's table and first column), which PostgreSQL also answers
    by reading all of the index."""
    name = node.get("Index Name")
    cond = node.get("Index Cond")
    table = node.get("Relation Name") or (indexes[name][0] if name else None)
    if table in populated:
        scan = "Relation Name" in node and node["Node Type"] != "ModifyTable"
        if scan and cond is None and "Recheck Cond" not in node:
            yield f"{node['Node Type']} on {table}"
        if node["Node Type"] == "Bitmap Index Scan" and cond is None:
            yield f"Bitmap Index Scan {name}"
        if name is not None and cond is not None:
            column = indexes[name][1]
            if f"({column} " not in cond and f"({column})" not in cond:
                yield f"{node['Node Type']} {name} on {cond} (its first column is {column})"
    for child in node.get("Plans", []):
        yield from _pg_whole_reads(child, indexes, populated)
