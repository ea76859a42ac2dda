"""Server processes for the benchmarks: the Rapport server and the bare reference app.

Each server is a separate process started the way an operator would (``rapport serve``,
or uvicorn with the same settings for the bare app), optionally pinned to one CPU so the
load generator can have the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpus() -> list[int]:
    """CPUs this process may run on."""
    return sorted(os.sched_getaffinity(0))


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    """``cmd`` prefixed with ``taskset`` for ``cpu`` (taskset execs: the pid stays the same)."""
    if cpu is None or shutil.which("taskset") is None:
        return cmd
    return ["taskset", "-c", str(cpu), *cmd]


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _stat(pid: str | int) -> tuple[str, float]:
    """(name, user + system CPU seconds so far) of a process, from /proc/<pid>/stat."""
    head, _, rest = Path(f"/proc/{pid}/stat").read_text().rpartition(")")
    fields = rest.split()
    return head.partition("(")[2], (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """User + system CPU time used so far by this machine's PostgreSQL processes (every
    process named ``postgres``: backends, WAL writer, checkpointer; Linux /proc). Only
    meaningful as a difference over a run in which nothing else uses the server."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name, seconds = _stat(entry.name)
        except OSError:
            continue  # the process ended meanwhile
        if name == "postgres":
            total += seconds
    return total


@dataclass
class Server:
    """A running server process."""

    url: str
    process: subprocess.Popen[bytes]

    def start_profile(self) -> None:
        """Begin profiling (servers started with ``profile=``)."""
        self.process.send_signal(signal.SIGUSR2)

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the server process (all its threads)."""
        return _stat(self.pid)[1]


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}); see {log}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not become ready; see {log}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Ask for a clean shutdown; kill if it does not come within a few seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextmanager
def rapport_server(
    database_url: str,
    workdir: Path,
    *,
    cpu: int | None,
    secret_key: str,
    migrate: bool,
    extra_env: dict[str, str] | None = None,
    profile: Path | None = None,
    port: int | None = None,
    public_url: str | None = None,
) -> Iterator[Server]:
    """``rapport serve`` on a free port of 127.0.0.1, one worker, access log off.

    With ``profile``, the server runs under pyinstrument and its session is saved there
    when the server stops. Instances of one deployment share ``public_url`` (token
    audiences derive from it), as they would behind a load balancer."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "RAPPORT_DATABASE_URL": database_url,
        "RAPPORT_PUBLIC_URL": public_url or url,
        "RAPPORT_SECRET_KEY": secret_key,
        "RAPPORT_LOG_LEVEL": "warning",
        **(extra_env or {}),
    }
    cmd = [
        str(BIN / "rapport"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--migrate" if migrate else "--no-migrate",
    ]
    if profile is not None:
        cmd = [str(BIN / "python"), "-m", "bench.profiled_server", "--port", str(port)]
        cmd += ["--out", str(profile)]
        env["PYTHONPATH"] = str(ROOT)
        if migrate:
            from rapport_server.migrate import upgrade

            asyncio.run(upgrade(database_url))
    log = workdir / f"server-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(pinned(cmd, cpu), env=env, stdout=out, stderr=out, cwd=workdir)
    try:
        _wait_ready(url, process, log, 60)
        yield Server(url, process)
    finally:
        if profile is not None and process.poll() is None:
            process.send_signal(signal.SIGUSR1)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(30)
        _stop(process)


@contextmanager
def bare_server(workdir: Path, *, cpu: int | None) -> Iterator[Server]:
    """The bare FastAPI app under uvicorn with the settings ``rapport serve`` uses."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        str(BIN / "python"),
        "-m",
        "uvicorn",
        "bench.bare_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    log = workdir / f"bare-{port}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("wb") as out:
        process = subprocess.Popen(pinned(cmd, cpu), env=env, stdout=out, stderr=out, cwd=ROOT)
    try:
        _wait_ready(url, process, log, 30)
        yield Server(url, process)
    finally:
        _stop(process)


def new_secret() -> str:
    """A token key shared by every instance of one run."""
    return secrets.token_urlsafe(48)
