"""Reading a Server-Sent Events stream in tests (a deliberately small parser)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Frame:
    id: str | None
    event: str | None
    data: str
    comment: str | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.data)


async def frames(response: httpx.Response) -> AsyncIterator[Frame]:
    """Frames (including comment-only ones) in arrival order."""
    fields: dict[str, str] = {}
    comment = None
    async for line in response.aiter_lines():
        if line == "":
            if fields or comment is not None:
                yield Frame(fields.get("id"), fields.get("event"), fields.get("data", ""), comment)
            fields, comment = {}, None
        elif line.startswith(":"):
            comment = line[1:].strip()
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            fields[name] = (
                fields[name] + "\n" + value if name == "data" and name in fields else value
            )
