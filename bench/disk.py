"""What the disk did while a latency run went on: a small fsync probe beside the load.

A send is durable before its answer (SQLite ``synchronous=FULL``, PostgreSQL's commit),
so a disk that stalls a sync for tens of milliseconds stalls every send in flight, and
at 50% of peak one such stall is enough to move a 10 s run's p99 (bench/PROFILE.md,
session 19). This probe writes 4 KiB and ``fdatasync``s it a few dozen times a second in
a thread of the bench process (its own file, in the work directory: the same file
system as the SQLite database and, here, as PostgreSQL's), so the latency rows can say
whether the disk itself stalled during the run. The load it adds is small beside the
server's own syncs (a few hundred a second at half load).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.loadgen import percentile

PROBE_RATE = 50.0
"""Syncs a second."""
STALL_MS = 20.0
"""A sync slower than this counts as a stall (the latency goal's p99)."""
_BLOCK = 4096
_SPAN = 256
"""The probe rewrites the same few blocks (1 MiB): no file growth after the first pass."""


@dataclass
class DiskProbe:
    """Each sync as (Unix time it began, ms it took)."""

    samples: list[tuple[float, float]] = field(default_factory=list)
    error: str = ""

    def within(self, start: float, end: float) -> DiskProbe:
        """The syncs that began from ``start`` to ``end`` (Unix time): a run's measured
        seconds, without its warm-up."""
        return DiskProbe([s for s in self.samples if start <= s[0] <= end], self.error)

    @property
    def times_ms(self) -> list[float]:
        return [ms for _, ms in self.samples]

    @property
    def stalls(self) -> list[tuple[float, float]]:
        return [s for s in self.samples if s[1] > STALL_MS]

    @property
    def slowest_ms(self) -> float:
        return max(self.times_ms, default=0.0)

    @property
    def p99_ms(self) -> float:
        return percentile(self.times_ms, 99) if self.samples else 0.0

    @property
    def note(self) -> str:
        """``disk beside it: 500 syncs of 4 KiB, p99 0.3 ms, slowest 41.2 ms (1 over 20 ms)``."""
        if self.error:
            return f"disk probe failed: {self.error}"
        if not self.times_ms:
            return ""
        return (
            f"disk beside it: {len(self.times_ms)} syncs of 4 KiB, p99 {self.p99_ms:.1f} ms, "
            f"slowest {self.slowest_ms:.1f} ms ({len(self.stalls)} over {STALL_MS:g} ms)"
        )

    def write(self, path: Path) -> None:
        """The slow syncs, one ``<unix time> <ms>`` a line, beside a run's timeline."""
        lines = [f"# {len(self.times_ms)} syncs; those over {STALL_MS:g} ms:"]
        lines += [f"{at:.3f}\t{ms:.1f}" for at, ms in self.stalls]
        path.write_text("\n".join(lines) + "\n", encoding="ascii")


def _probe(path: Path, rate: float, stop: threading.Event, out: DiskProbe) -> None:
    block = os.urandom(_BLOCK)
    sync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync
    pace = 1.0 / rate
    try:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    except OSError as exc:
        out.error = type(exc).__name__
        return
    try:
        i = 0
        while not stop.is_set():
            began = time.perf_counter()
            wall = time.time()
            os.pwrite(fd, block, (i % _SPAN) * _BLOCK)
            sync(fd)
            out.samples.append((wall, (time.perf_counter() - began) * 1000))
            i += 1
            stop.wait(max(0.0, pace - (time.perf_counter() - began)))
    except OSError as exc:
        out.error = type(exc).__name__
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def probing(directory: Path, rate: float = PROBE_RATE) -> Iterator[DiskProbe]:
    """Sync a probe file in ``directory`` ``rate`` times a second while the block runs
    (``rate`` 0: no probe, and an empty result)."""
    out = DiskProbe()
    if rate <= 0:
        yield out
        return
    stop = threading.Event()
    path = directory / f"disk-probe-{os.getpid()}-{threading.get_ident()}.bin"
    worker = threading.Thread(
        target=_probe, args=(path, rate, stop, out), name="disk-probe", daemon=True
    )
    worker.start()
    try:
        yield out
    finally:
        stop.set()
        worker.join()
