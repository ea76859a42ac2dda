"""Offline verification of a connection's whole signed log.

Anyone holding a connection's log can check it without trusting the server: every object's
signature and content id, every chain link, and that each step was allowed by the rules at
the time the server says it received it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import envelope, errors
from .state import ConnectionState, apply


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One log entry: the signed object and when the server received it (UTC seconds)."""

    object: dict[str, Any]
    received_time: int


@dataclass(frozen=True, slots=True)
class VerifiedLog:
    """The outcome of :func:`verify_log`."""

    state: ConnectionState
    count: int


def verify_log(
    entries: Iterable[LogEntry | tuple[dict[str, Any], int]],
    *,
    skew: int = envelope.DEFAULT_SKEW_SECONDS,
    check_time: bool = True,
) -> VerifiedLog:
    """Re-verify a log from its signatures alone and replay it through the state machine.

    Raises the first :class:`~rapport_protocol.errors.ProtocolError` found, with
    ``extra["index"]`` set to the offending entry's position.
    """
    state: ConnectionState | None = None
    seen: set[str] = set()
    count = 0
    for index, entry in enumerate(entries):
        raw, received = (
            (entry.object, entry.received_time) if isinstance(entry, LogEntry) else entry
        )
        try:
            obj = envelope.verify(raw, now=received if check_time else None, skew=skew)
            if obj.id in seen:
                raise errors.Replayed("object appears twice in the log")
            seen.add(obj.id)
            state = apply(state, obj, received)
        except errors.ProtocolError as exc:
            exc.extra["index"] = index
            raise
        count += 1
    if state is None:
        raise errors.StateError("an empty log has no connection")
    return VerifiedLog(state=state, count=count)
