"""Shared pieces of the reliability and security suite (issue #6).

Every family records one figure line with :func:`record`; at the end of the session the
lines are printed in the terminal summary and written to
``var/reliability/<backend>.txt`` (override with ``RAPPORT_RELIABILITY_REPORT``), so a run
leaves its numbers behind for RELIABILITY.md.

Profiles: the default (``make test``) keeps every family to seconds; ``RAPPORT_SOAK=1``
(``make soak``) raises example counts and durations.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

SOAK = os.environ.get("RAPPORT_SOAK", "") not in ("", "0")
FIGURES: list[str] = []


def profile(fast: int, soak: int) -> int:
    """``fast`` in the default profile, ``soak`` under ``RAPPORT_SOAK=1``; env overrides.

    ``RAPPORT_RELIABILITY_SCALE`` (a float) multiplies the chosen count, for quick local runs.
    """
    scale = float(os.environ.get("RAPPORT_RELIABILITY_SCALE", "1"))
    return max(1, int((soak if SOAK else fast) * scale))


def backend() -> str:
    return os.environ.get("RAPPORT_TEST_DB", "sqlite")


def record(family: str, text: str) -> None:
    """Record the figure line of a family: ``RELIABILITY <family> [<db>]: <text>``."""
    FIGURES.append(f"RELIABILITY {family} [{backend()}{', soak' if SOAK else ''}]: {text}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for line in FIGURES:
        terminalreporter.write_line(line)
    target = Path(os.environ.get("RAPPORT_RELIABILITY_REPORT", f"var/reliability/{backend()}.txt"))
    target.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with target.open("a") as fh:
        fh.write(f"# run {stamp}\n" + "\n".join(FIGURES) + "\n")


@pytest.fixture
def soak() -> bool:
    return SOAK
