"""Drive load from a separate process on the load CPU: wrk (peak throughput) and the
open-loop generator in :mod:`bench.loadgen` (latency at a fixed rate)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import report
from bench.servers import ROOT, pinned

LUA = Path(__file__).resolve().parent / "send.lua"


@dataclass(frozen=True)
class LoadResult:
    """What one load run measured."""

    tool: str
    ok: int
    failed: int
    seconds: float
    p50_ms: float
    p99_ms: float
    detail: str = ""
    steal: float | None = None
    """Share of the machine's CPU time the hypervisor took for other guests during the
    run (``steal`` in /proc/stat); ``None`` where the kernel does not say."""
    warmup_p99_ms: float | None = None
    """Open loop: the p99 of the warm-up before the measured seconds (not counted)."""
    max_ms: float | None = None
    """Open loop: the slowest counted request."""
    measured_at: float | None = None
    """Open loop: Unix time the measured seconds began (after the warm-up)."""
    disk_note: str = ""
    """What the disk probe beside the run saw (bench/disk.py); empty without one."""

    @property
    def rate(self) -> float:
        """2xx responses per second."""
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def steal_note(self) -> str:
        return steal_text(self.steal)


def steal_text(share: float | None) -> str:
    """``CPU steal 12%`` for a row's notes; empty when unknown."""
    return "" if share is None else f"CPU steal {share:.0%}"


def cpu_times() -> tuple[int, int] | None:
    """(steal, total) jiffies of all CPUs so far, from /proc/stat (Linux); ``None``
    elsewhere. A virtual machine's steal is time its vCPUs were ready to run but the host
    ran something else: the share of a run that a busy host takes away, which moves
    throughput and, most of all, tail latency between runs of the same code."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal (guest time is inside user already)
    values = [int(v) for v in fields[1:9]]
    return values[7], sum(values)


def steal_since(before: tuple[int, int] | None) -> float | None:
    """The steal share of CPU time since ``before`` (from :func:`cpu_times`)."""
    after = cpu_times()
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def _run(cmd: list[str], timeout: float) -> str:
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
    )
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def peak(
    url: str,
    requests: Path,
    *,
    seconds: float,
    connections: int,
    mode: str = "chain",
    cpu: int | None,
    tool: str = "wrk",
    batch: bool = False,
) -> LoadResult:
    """Closed-loop peak throughput with ``connections`` connections. ``batch``: the
    requests are batch sends, and ``ok`` / ``failed`` count their messages (wrk only)."""
    if tool == "wrk":
        cmd = [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-s",
            str(LUA),
            url,
            "--",
            str(requests),
            mode,
            "1",
        ]
        times = cpu_times()
        out = _run(pinned(cmd, cpu), seconds + 120)
        steal = steal_since(times)
        line = next(x for x in reversed(out.splitlines()) if x.startswith("{"))
        data = json.loads(line)
        detail = ""
        if data["failed"] or data["socket_errors"] or data["filler"]:
            detail = (
                f"non-2xx {data['failed']} ({data['statuses']}), socket errors "
                f"{data['socket_errors']}, idle fillers {data['filler']}"
            )
        ok, failed = data["ok"], data["failed"]
        if batch:  # count messages, not requests
            refused = data["items_failed"]
            detail = report.notes(
                f"{data['ok']:,} batch requests",
                f"{refused:,} messages refused" if refused else "",
                detail,
            )
            ok, failed = data["items_ok"], data["items_failed"]
        return LoadResult(
            "wrk",
            ok,
            failed,
            data["duration_us"] / 1e6,
            data["p50_us"] / 1000,
            data["p99_us"] / 1000,
            detail,
            steal,
        )
    if batch:
        raise ValueError("batch sends are counted by bench/send.lua: wrk only")
    return _loadgen(url, requests, seconds=seconds, connections=connections, mode=mode, cpu=cpu)


def fixed_rate(
    url: str,
    requests: Path,
    *,
    rate: float,
    seconds: float,
    warmup: float = 0.0,
    connections: int,
    mode: str = "chain",
    cpu: int | None,
) -> LoadResult:
    """Open-loop run at ``rate`` requests/s: latency measured from each request's due time,
    after ``warmup`` seconds at that rate that are not counted."""
    return _loadgen(
        url,
        requests,
        seconds=seconds,
        connections=connections,
        mode=mode,
        cpu=cpu,
        rate=rate,
        warmup=warmup,
    )


def _loadgen(
    url: str,
    requests: Path,
    *,
    seconds: float,
    connections: int,
    mode: str,
    cpu: int | None,
    rate: float = 0.0,
    warmup: float = 0.0,
) -> LoadResult:
    cmd = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--url",
        url,
        "--file",
        str(requests),
        "--duration",
        str(seconds),
        "--connections",
        str(connections),
        "--mode",
        mode,
        "--rate",
        str(rate),
        "--timeline",
        str(requests.with_suffix(".timeline")),
        "--warmup",
        str(warmup),
    ]
    times = cpu_times()
    out = _run(pinned(cmd, cpu), seconds + 120)
    steal = steal_since(times)
    data = json.loads(out.strip().splitlines()[-1])
    detail = ""
    if data["failed"] or data["starved"]:
        detail = f"non-2xx {data['failed']} {data['statuses']}, starved {data['starved']}"
    return LoadResult(
        "loadgen" + (f"@{rate:.0f}/s" if rate else ""),
        data["ok"],
        data["failed"],
        data["seconds"],
        data["p50_ms"],
        data["p99_ms"],
        detail,
        steal,
        data.get("warmup_p99_ms"),
        data.get("max_ms"),
        data.get("measured_at"),
    )
