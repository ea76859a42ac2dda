"""A Server-Sent Events decoder (WHATWG HTML §9.2.6), fed one line at a time.

Sans-I/O: the clients read lines from the HTTP body and hand them here; complete events
come out. Comment lines (heartbeats) produce nothing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event: ``id`` is the last event id seen so far in the stream."""

    event: str
    data: str
    id: str | None
    retry: int | None


class SSEDecoder:
    """Turns the lines of an ``text/event-stream`` body into :class:`ServerSentEvent`."""

    def __init__(self, last_event_id: str | None = None) -> None:
        self.last_event_id = last_event_id
        self.retry: int | None = None
        self._event = ""
        self._data: list[str] = []
        self._seen_field = False

    def feed(self, line: str) -> ServerSentEvent | None:
        """Consume one line (without its line ending); return an event at a blank line."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: heartbeats keep the connection alive
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        self._seen_field = True
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event = self._data, self._event
        self._data, self._event, self._seen_field = [], "", False
        if not data:
            return None
        return ServerSentEvent(
            event=event or "message",
            data="\n".join(data),
            id=self.last_event_id,
            retry=self.retry,
        )
