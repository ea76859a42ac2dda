"""Strict JSON parsing for signed bytes.

Signed objects must mean the same thing to every implementation, so the parser refuses
everything that JSON parsers disagree on (RFC 8259 §4, RFC 7493 I-JSON): duplicate member
names at any depth, NaN/Infinity, lone surrogates, floats (signed payloads carry integers
only), integers outside the IEEE-754 safe range ±(2^53-1), and oversize or over-deep input.
Each failure raises its own :class:`~rapport_protocol.errors.JsonError` subclass.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from . import errors

MAX_SAFE_INTEGER = 2**53 - 1
DEFAULT_MAX_BYTES = 64 * 1024
DEFAULT_MAX_DEPTH = 32


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits applied by :func:`loads`."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH


DEFAULT_LIMITS = Limits()


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise errors.JsonDuplicateKey(f"duplicate member name {key!r}")
            seen.add(key)
    return result


def _no_constant(name: str) -> Any:
    raise errors.JsonNonFinite(f"{name} is not JSON")


def _no_float(text: str) -> Any:
    raise errors.JsonFloatForbidden(f"number {text} is not an integer")


def _safe_int(text: str) -> int:
    # Digits are checked by length first so a huge literal is never converted.
    if len(text.lstrip("-")) > 16:
        raise errors.JsonIntegerOutOfRange("integer outside ±(2^53-1)")
    value = int(text)
    if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return value
    raise errors.JsonIntegerOutOfRange("integer outside ±(2^53-1)")


_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs,
    parse_constant=_no_constant,
    parse_float=_no_float,
    parse_int=_safe_int,
    strict=True,
)


def _check_tree(value: Any, max_depth: int) -> None:
    """Walk the parsed tree once: depth limit and lone surrogates in keys and strings."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            _check_string(node)
        elif isinstance(node, dict):
            if depth > max_depth:
                raise errors.JsonTooDeep(f"nesting deeper than {max_depth}")
            for key, child in node.items():
                _check_string(key)
                stack.append((child, depth + 1))
        elif isinstance(node, list):
            if depth > max_depth:
                raise errors.JsonTooDeep(f"nesting deeper than {max_depth}")
            stack.extend((child, depth + 1) for child in node)


def _check_string(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise errors.JsonLoneSurrogate("string contains a lone surrogate") from None


def loads(data: bytes | str, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Parse ``data`` as strict JSON (UTF-8, no BOM) and return plain Python values.

    Raises a :class:`~rapport_protocol.errors.JsonError` subclass describing the first
    problem found.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if len(raw) > limits.max_bytes:
        raise errors.JsonTooLarge(f"document larger than {limits.max_bytes} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.JsonInvalidUtf8("document is not valid UTF-8") from None
    if text.startswith("\ufeff"):
        raise errors.JsonInvalidUtf8("byte order mark is not allowed")
    try:
        # The per-integer hook costs ~0.1 us an integer; a regex pre-scan for long digit
        # runs, to skip it, cost ~8 us on a typical signed message (bench/PROFILE.md).
        value, end = _DECODER.raw_decode(text, _skip_ws(text, 0))
    except errors.JsonError:
        raise
    except RecursionError:
        raise errors.JsonTooDeep(f"nesting deeper than {limits.max_depth}") from None
    except (json.JSONDecodeError, ValueError) as exc:
        raise errors.JsonError(str(exc)) from None
    if _skip_ws(text, end) != len(text):
        raise errors.JsonError("extra data after the JSON value")
    # The tree walk finds lone surrogates (only a \u escape can make one: the text is
    # valid UTF-8) and nesting beyond max_depth (not without that many '{' and '['). A
    # typical signed object has neither, and skips the walk.
    if "\\u" in text or text.count("{") + text.count("[") > limits.max_depth:
        _check_tree(value, limits.max_depth)
    return value


def _skip_ws(text: str, pos: int) -> int:
    length = len(text)
    while pos < length and text[pos] in " \t\n\r":
        pos += 1
    return pos
