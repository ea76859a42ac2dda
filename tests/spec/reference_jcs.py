"""A small RFC 8785 (JCS) implementation written from the RFC, independent of ``rfc8785``.

Used by the spec tests to check the canonical bytes ``rapport_protocol`` produces. It covers
what RFC 8785 §3.2 asks for: member sorting by UTF-16 code units (§3.2.3), the minimal
string escaping of §3.2.2.2, literals, and numbers serialised as ECMAScript's
Number.prototype.toString does (§3.2.2.3) — integers for Rapport objects, floats only for the
published JCS test data.
"""

from __future__ import annotations

import math
from typing import Any

_SHORT_ESCAPES = {
    0x08: "\\b",
    0x09: "\\t",
    0x0A: "\\n",
    0x0C: "\\f",
    0x0D: "\\r",
    0x22: '\\"',
    0x5C: "\\\\",
}


def serialize_string(text: str) -> str:
    """RFC 8785 §3.2.2.2: escape only ``"``, ``\\`` and C0 controls; keep the rest as is."""
    out = ['"']
    for char in text:
        point = ord(char)
        if point in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[point])
        elif point < 0x20:
            out.append(f"\\u{point:04x}")
        elif 0xD800 <= point <= 0xDFFF:
            raise ValueError("lone surrogate")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def serialize_number(value: int | float) -> str:
    """ECMAScript Number::toString for a finite IEEE-754 double (RFC 8785 §3.2.2.3)."""
    if isinstance(value, int):
        if abs(value) > 2**53 - 1:
            raise ValueError("integer outside the I-JSON range")
        return str(value)
    if not math.isfinite(value):
        raise ValueError("not finite")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # Python's repr gives the shortest digits that round-trip, as ECMAScript requires.
    text = repr(abs(value))
    mantissa, _, exp_text = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    exponent = (int(exp_text) if exp_text else 0) - len(fraction)
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    digits = stripped
    k = len(digits)
    n = k + exponent  # value = 0.digits × 10^n
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        e_text = ("+" if e >= 0 else "-") + str(abs(e))
        body = (digits if k == 1 else digits[0] + "." + digits[1:]) + "e" + e_text
    return sign + body


def _utf16_key(name: str) -> bytes:
    # Big-endian UTF-16 bytes compare exactly like sequences of UTF-16 code units.
    return name.encode("utf-16-be")


def serialize(value: Any) -> str:
    """The canonical JSON text of ``value`` (dict, list, str, int, float, bool, None)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return serialize_number(value)
    if isinstance(value, str):
        return serialize_string(value)
    if isinstance(value, list):
        return "[" + ",".join(serialize(item) for item in value) + "]"
    if isinstance(value, dict):
        members = sorted(value.items(), key=lambda item: _utf16_key(item[0]))
        return "{" + ",".join(serialize_string(k) + ":" + serialize(v) for k, v in members) + "}"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def canonicalize(value: Any) -> bytes:
    """RFC 8785 canonical UTF-8 bytes."""
    return serialize(value).encode("utf-8")
