"""The bench's CPU-steal reading (bench/load.py) and its notes."""

from __future__ import annotations

import sys

import pytest

from bench import load, report


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")
def test_steal_since_is_a_share_of_the_cpu_time_that_passed() -> None:
    before = load.cpu_times()
    assert before is not None
    steal, total = before
    assert 0 <= steal <= total
    sum(i * i for i in range(300_000))  # let some CPU time pass
    share = load.steal_since(before)
    assert share is None or 0.0 <= share <= 1.0


def test_steal_is_unknown_without_a_reading_and_left_out_of_notes() -> None:
    assert load.steal_since(None) is None
    res = load.LoadResult("wrk", 10, 0, 1.0, 1.0, 2.0)
    assert res.steal_note == ""
    assert report.notes("wrk, 64 conns", res.steal_note, "") == "wrk, 64 conns"
    stolen = load.LoadResult("wrk", 10, 0, 1.0, 1.0, 2.0, steal=0.123)
    assert report.notes("a", stolen.steal_note) == "a; CPU steal 12%"
