"""The references: what the crypto and the database alone can do on this machine, now.

``limit_crypto``: RFC 8785 canonicalisation + PyNaCl Ed25519 verification of a typical
signed message, per second on one core.
``limit_db``: single-row INSERT + COMMIT per second with the server's own engine and
settings (SQLite WAL + ``synchronous=FULL`` + ``BEGIN IMMEDIATE``; PostgreSQL defaults), and
rows per second when 100 rows share a commit.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import nacl.signing
import rfc8785
from rapport_protocol import MessageType, SigningKey, sign
from rapport_protocol.canonical import b64url_decode
from rapport_protocol.envelope import SignedObject
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text, insert

TYPICAL_CONTENT = (
    "Your order #48213 has shipped. It should arrive on Thursday between 9:00 and 13:00; "
    "reply STOP to stop delivery updates."
)


def typical_message(key: SigningKey | None = None, *, now: int | None = None) -> SignedObject:
    """A message as the send benchmark sends it: chained, with a topic and a short payload."""
    key = key or SigningKey.generate()
    return sign(
        key,
        MessageType.MESSAGE,
        {"topic": "orders", "purpose": "delivery updates"},
        created_time=now or int(time.time()),
        cid="0123456789abcdef0123456789abcdef",
        seq=42,
        prev="ab" * 32,
        payload=TYPICAL_CONTENT,
    )


@contextmanager
def on_cpu(cpu: int | None) -> Iterator[None]:
    """Run the block on one CPU (the one the server gets), then restore the affinity."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def limit_crypto(seconds: float) -> float:
    """Canonicalise + verify one typical message, repeatedly: operations per second."""
    obj = typical_message()
    raw = obj.raw
    signature = b64url_decode(raw["proof"]["sig"])
    key = nacl.signing.VerifyKey(_public_key(obj))
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(200):
            unsigned = {k: v for k, v in raw.items() if k not in ("id", "proof", "payload")}
            key.verify(rfc8785.dumps(unsigned), signature)
        done += 200
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def _public_key(obj: SignedObject) -> bytes:
    from rapport_protocol import parse_did

    return parse_did(obj.sender).public_key


_metadata = MetaData()
_rows = Table(
    "bench_limit_rows",
    _metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("cid", String(32), nullable=False),
    Column("object", Text, nullable=False),
    Column("payload", Text),
    Column("received_at", BigInteger, nullable=False),
)


def _row(obj: SignedObject, i: int) -> dict[str, Any]:
    return {
        "cid": f"{i:032x}",
        "object": rfc8785.dumps(obj.raw).decode(),
        "payload": obj.payload,
        "received_at": int(time.time()),
    }


@dataclass(frozen=True)
class DbLimit:
    """Rows durably inserted per second, and the time one transaction took (p50, p99)."""

    rate: float
    p50_ms: float
    p99_ms: float


async def _limit_db(url: str, seconds: float, batch: int) -> DbLimit:
    from rapport_server.db import create_engine, writer_engine

    engine = create_engine(url)
    writer = writer_engine(engine)
    try:
        async with writer.begin() as conn:
            await conn.run_sync(_metadata.create_all)
        row = _row(typical_message(), 0)
        done = 0
        took: list[float] = []
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            began = time.perf_counter()
            async with writer.begin() as conn:
                if batch == 1:
                    await conn.execute(insert(_rows).values(**row))
                else:
                    await conn.execute(insert(_rows), [row] * batch)
            done += batch
            now = time.perf_counter()
            took.append(now - began)
            if now >= deadline:
                rate = done / (now - start)
                break
        async with writer.begin() as conn:
            await conn.run_sync(_metadata.drop_all)
        took.sort()
        p50 = took[len(took) // 2] * 1000
        p99 = took[min(len(took) - 1, int(len(took) * 0.99))] * 1000
        return DbLimit(rate, p50, p99)
    finally:
        await engine.dispose()


def limit_db(url: str, seconds: float, *, batch: int = 1) -> DbLimit:
    """Rows durably inserted per second, ``batch`` rows per commit, on the server's engine
    (and how long one such transaction took: the disk's commit latency for ``batch=1``)."""
    return asyncio.run(_limit_db(url, seconds, batch))
