"""Storage form of signed objects: canonical JSON without the detached payload."""

from __future__ import annotations

import json
from typing import Any

from rapport_protocol.canonical import canonicalize
from rapport_protocol.envelope import SignedObject


def object_json(obj: SignedObject) -> str:
    """The stored text of ``obj``: RFC 8785 JSON of the object, payload left out."""
    raw = {k: v for k, v in obj.raw.items() if k != "payload"}
    return canonicalize(raw).decode("utf-8")


def wire_object(stored: str, payload: str | None) -> dict[str, Any]:
    """The object as served: the stored JSON with the payload re-attached if it still exists."""
    raw: dict[str, Any] = json.loads(stored)
    if payload is not None:
        raw["payload"] = payload
    return raw
