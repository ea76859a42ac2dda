"""Summarise a pyinstrument session of the server: where does a send's CPU time go?

Two views: self time by library (what kind of work), and inclusive time of the server's
own hot-path functions (which step).

    python -m bench.profile_summary profile.pyisession
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from pyinstrument.frame import Frame
from pyinstrument.session import Session

# First match wins: path fragment -> category.
CATEGORIES = (
    ("/sqlalchemy/", "SQLAlchemy (statement building, ORM, execution)"),
    ("/aiosqlite/", "aiosqlite (thread hand-off)"),
    ("/asyncpg/", "asyncpg"),
    ("/fastapi/", "FastAPI / Starlette routing, dependencies"),
    ("/starlette/", "FastAPI / Starlette routing, dependencies"),
    ("/uvicorn/", "uvicorn HTTP"),
    ("/httptools/", "uvicorn HTTP"),
    ("/pydantic", "pydantic (validation, JSON)"),
    ("/rfc8785/", "RFC 8785 canonicalisation"),
    ("/nacl/", "Ed25519 (PyNaCl)"),
    ("/joserfc/", "JWT (joserfc)"),
    ("/structlog/", "logging"),
    ("rapport_protocol/", "rapport_protocol (own code)"),
    ("rapport_server/", "rapport_server (own code)"),
    ("/greenlet/", "greenlet switches"),
    ("asyncio/", "asyncio / event loop"),
    ("uvloop", "asyncio / event loop"),
)

HOT = (
    "signed_object",
    "current_subject",
    "verify",
    "apply_object",
    "get_for",
    "append",
    "save_state",
    "_effects",
    "add_event",
    "apply",
    "decide",
    "state_of",
    "object_json",
    "_commit",
    "run_write",
)


def _category(frame: Frame) -> str:
    if frame.is_synthetic and frame.parent is not None:
        if frame.function == "[await]":
            return "idle (awaiting I/O)"
        return _category(frame.parent)
    path = frame.file_path or ""
    for fragment, name in CATEGORIES:
        if fragment in path:
            return name
    return "other (stdlib, builtins)"


def summarise(session: Session) -> str:
    root = session.root_frame()
    if root is None:
        return "empty profile"
    by_category: dict[str, float] = defaultdict(float)
    inclusive: dict[str, float] = defaultdict(float)

    def walk(frame: Frame, active: frozenset[str]) -> None:
        own = frame.time - sum(c.time for c in frame.children)
        by_category[_category(frame)] += own
        name = frame.function or ""
        key = f"{name} ({(frame.file_path_short or '').split('/')[-1]})"
        is_hot = name in HOT and "rapport_" in (frame.file_path or "")
        if is_hot and key not in active:
            inclusive[key] += frame.time
            active = active | {key}
        for child in frame.children:
            walk(child, active)

    walk(root, frozenset())
    total = root.time
    lines = [f"Profile: {total:.2f} s sampled, CPU {session.cpu_time:.2f} s", ""]
    lines += ["Self time by kind of work:", ""]
    for name, value in sorted(by_category.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {value / total * 100:5.1f}%  {name}")
    lines += ["", "Inclusive time of hot-path steps (main thread):", ""]
    for name, value in sorted(inclusive.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {value / total * 100:5.1f}%  {name}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("session", type=Path)
    args = parser.parse_args()
    print(summarise(Session.load(str(args.session))))


if __name__ == "__main__":
    main()
