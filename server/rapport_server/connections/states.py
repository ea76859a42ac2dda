"""Parsed connection states, kept in process by (cid, version).

A send needs its connection's state as a ``ConnectionState``; parsing the stored JSON
(every grant ever issued, the mutes, the favours) was ~9% of a send's server CPU at peak
(bench/PROFILE.md, session 4). The state stored at a given ``version`` never changes —
every writer compare-and-swaps on ``version`` and bumps it — so a parsed state is valid
for exactly that version: a row read at another version (another instance wrote it, or a
batch rolled back) simply misses and is parsed afresh. Nothing is ever served from here
without the row's version read in the same transaction.
"""

from __future__ import annotations

from collections import OrderedDict

from rapport_protocol import ConnectionState


class StateCache:
    """A bounded map cid → (version, parsed state); the oldest entries go first."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[int, ConnectionState]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def parse(self, cid: str, version: int, text: str) -> ConnectionState:
        """The state stored as ``text`` at ``version``, parsed once per version."""
        hit = self._entries.get(cid)
        if hit is not None and hit[0] == version:
            self.hits += 1
            return hit[1]
        self.misses += 1
        state = ConnectionState.model_validate_json(text)
        self.put(cid, version, state)
        return state

    def put(self, cid: str, version: int, state: ConnectionState) -> None:
        """Remember ``state`` as the one committed at ``version`` (call after the commit)."""
        if self._size <= 0:
            return
        entries = self._entries
        entries[cid] = (version, state)
        entries.move_to_end(cid)  # recently written connections stay longest
        if len(entries) > self._size:
            entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
