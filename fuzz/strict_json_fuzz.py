"""Coverage-guided fuzzing of the strict JSON parser (atheris / libFuzzer).

Properties checked for every input:

* ``strict_json.loads`` either returns a value or raises a ``JsonError`` — never anything
  else (no crash, no RecursionError, no MemoryError from a huge integer);
* whatever it accepts, the standard library parser accepts too and reads the same value;
* what it accepts has no duplicate member names, no floats, only integers within
  ±(2^53-1), no lone surrogates, and nests no deeper than the limit.

Run (bounded)::

    .venv/bin/python fuzz/strict_json_fuzz.py -runs=200000 -max_total_time=60 fuzz/corpus

``make soak`` runs it for a bounded time; a crash leaves ``crash-*`` reproducer files.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import atheris

with atheris.instrument_imports():
    from rapport_protocol import errors, strict_json

LIMITS = strict_json.Limits(max_bytes=4096, max_depth=16)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), "duplicate member accepted"
    return dict(pairs)


def _check(value: Any, depth: int = 1) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        assert -(2**53 - 1) <= value <= 2**53 - 1, "unsafe integer accepted"
    elif isinstance(value, float):
        raise AssertionError("float accepted")
    elif isinstance(value, str):
        value.encode("utf-8")  # raises on a lone surrogate
    elif isinstance(value, list | dict):
        assert depth <= LIMITS.max_depth, "over-deep document accepted"
        children = value.values() if isinstance(value, dict) else value
        for key in value if isinstance(value, dict) else ():
            key.encode("utf-8")
        for child in children:
            _check(child, depth + 1)


def test_one_input(data: bytes) -> None:
    try:
        value = strict_json.loads(data, LIMITS)
    except errors.JsonError:
        return
    reference = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    assert reference == value, "stdlib reads another value"
    _check(value)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
