"""The disk probe beside the latency runs (bench/disk.py)."""

from __future__ import annotations

import time
from pathlib import Path

from bench import disk


def test_probing_syncs_at_its_pace_and_leaves_no_file(tmp_path: Path) -> None:
    began = time.time()
    with disk.probing(tmp_path, rate=100) as probe:
        time.sleep(0.5)
    ended = time.time()
    assert probe.error == ""
    # paced, not flat out: about 50 in 0.5 s (a slow disk gives fewer, never many more)
    assert 1 <= len(probe.samples) <= 60
    assert all(began <= at <= ended and ms >= 0 for at, ms in probe.samples)
    assert [at for at, _ in probe.samples] == sorted(at for at, _ in probe.samples)
    assert list(tmp_path.iterdir()) == []
    assert probe.note.startswith(f"disk beside it: {len(probe.samples)} syncs of 4 KiB, p99 ")


def test_stalls_window_and_note() -> None:
    probe = disk.DiskProbe(
        [(100.0, 0.2), (101.0, 35.0), (102.0, 0.4), (103.0, 20.5), (104.0, 20.0)]
    )
    assert probe.stalls == [(101.0, 35.0), (103.0, 20.5)]  # over 20 ms, not at it
    assert probe.slowest_ms == 35.0
    assert (
        probe.note
        == "disk beside it: 5 syncs of 4 KiB, p99 35.0 ms, slowest 35.0 ms (2 over 20 ms)"
    )
    window = probe.within(101.5, 104.0)
    assert window.samples == [(102.0, 0.4), (103.0, 20.5), (104.0, 20.0)]
    assert window.stalls == [(103.0, 20.5)]
    assert disk.DiskProbe().note == ""
    assert disk.DiskProbe(error="PermissionError").note == "disk probe failed: PermissionError"


def test_write_lists_the_stalls(tmp_path: Path) -> None:
    path = tmp_path / "run.disk"
    disk.DiskProbe([(1796516397.24, 86.6), (1796516397.3, 0.1)]).write(path)
    assert path.read_text() == "# 2 syncs; those over 20 ms:\n1796516397.240\t86.6\n"


def test_a_missing_directory_is_an_error_not_a_crash(tmp_path: Path) -> None:
    with disk.probing(tmp_path / "gone") as probe:
        time.sleep(0.05)
    assert probe.error == "FileNotFoundError"
    assert probe.samples == []


def test_rate_zero_is_no_probe(tmp_path: Path) -> None:
    with disk.probing(tmp_path, rate=0) as probe:
        time.sleep(0.05)
    assert probe.samples == [] and probe.error == "" and probe.note == ""
    assert list(tmp_path.iterdir()) == []
