"""`rapport serve` as a user runs it: a subprocess on a free port, migrating SQLite itself."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers import free_port


def test_rapport_serve_starts_migrates_and_answers_healthz(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "RAPPORT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"}
    rapport = Path(sys.executable).with_name("rapport")
    proc = subprocess.Popen(
        [str(rapport), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.2)
        assert r.json() == {"status": "ok", "database": "sqlite"}
        assert (
            httpx.get(f"http://127.0.0.1:{port}/openapi.json").json()["info"]["title"] == "Rapport"
        )
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert f"API docs: http://127.0.0.1:{port}/docs" in out
    assert (tmp_path / "r.db").exists()
