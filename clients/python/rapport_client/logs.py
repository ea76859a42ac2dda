"""Verify a connection's log offline, with nothing but ``rapport_protocol``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rapport_protocol import verify_log as protocol_verify_log
from rapport_protocol.log import VerifiedLog

from .models import LogItem


def verify_log(
    entries: Iterable[LogItem | Mapping[str, Any] | tuple[dict[str, Any], int]],
    *,
    check_time: bool = True,
) -> VerifiedLog:
    """Check every signature, content id and chain link of a log and replay it through the
    protocol's rules at the times the server received each object.

    ``entries`` are :class:`~rapport_client.models.LogItem` values (from
    ``client.connections.log(cid)``), their JSON (``{"object", "received_time", ...}``, as
    in an account export) or ``(object, received_time)`` pairs. Returns the final state;
    raises the first :class:`rapport_protocol.ProtocolError` with ``extra["index"]``.
    Trusts nothing the server says except the receipt times.
    """
    pairs: list[tuple[dict[str, Any], int]] = []
    for entry in entries:
        if isinstance(entry, LogItem):
            pairs.append((entry.object, entry.received_time))
        elif isinstance(entry, tuple):
            pairs.append((entry[0], entry[1]))
        else:
            pairs.append((dict(entry["object"]), int(entry["received_time"])))
    return protocol_verify_log(pairs, check_time=check_time)
