"""Generated regions of spec/protocol.md: tables rendered from the protocol's own tables.

A region is delimited by ``<!-- BEGIN GENERATED: name -->`` and ``<!-- END GENERATED -->``;
everything between the markers is replaced. The tables come from
``CONNECTION_TRANSITIONS``, ``FAVOUR_TRANSITIONS``, ``ERRORS_BY_CODE``, ``MessageType`` /
``BODY_MODELS``, ``REFUSAL_CODES`` and the strict-JSON limits, so the prose cannot drift from
the code without ``tests/spec`` failing.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from rapport_protocol import envelope, errors, strict_json
from rapport_protocol.decision import REFUSAL_CODES
from rapport_protocol.favours import FAVOUR_TRANSITIONS
from rapport_protocol.state import CONNECTION_TRANSITIONS
from rapport_protocol.types import BODY_MODELS, EITHER, TYPE_PREFIX, UNCHAINED, MessageType

# One line per stable code. A code missing here makes generation fail, so a new error
# class cannot reach the spec without a description.
ERROR_DESCRIPTIONS: dict[str, str] = {
    "protocol_error": "Base of every protocol error (never raised itself).",
    "json_invalid": (
        "Not JSON, or JSON the strict rules refuse (trailing data, control characters)."
    ),
    "json_invalid_utf8": "The bytes are not UTF-8, or start with a byte order mark.",
    "json_duplicate_key": "A member name occurs twice in one object, at any depth.",
    "json_non_finite": "`NaN`, `Infinity` or `-Infinity`.",
    "json_lone_surrogate": "A string or member name contains an unpaired UTF-16 surrogate.",
    "json_float_forbidden": "A number with a fraction or an exponent.",
    "json_integer_out_of_range": "An integer outside ±(2^53−1).",
    "json_too_large": "The document is larger than the byte limit.",
    "json_too_deep": "Arrays/objects nested deeper than the depth limit.",
    "invalid_did": "`from`, `to` or a DID in a body is not a canonical Ed25519 `did:key`.",
    "invalid_kid": "`proof.kid` is not `<did:key>#<its own multibase value>`.",
    "weak_public_key": "The key is not a canonical encoding of a point of large prime order.",
    "invalid_object": "The envelope has the wrong shape (members, types, chaining headers).",
    "unknown_type": "`type` is not one of the protocol's type URIs.",
    "invalid_body": "The body does not match its type's model, or breaks a body rule.",
    "id_mismatch": "`id` is not the SHA-256 of the signing input.",
    "payload_mismatch": "The detached `payload` does not match `content_digest`/`content_length`.",
    "kid_mismatch": "`proof.kid` belongs to a DID other than `from`.",
    "bad_signature": "The signature is malformed or does not verify.",
    "clock_skew": "`created_time` is further from the receiver's clock than the window.",
    "object_expired": "`expires_time` ≤ the receiver's clock.",
    "chain_broken": "`seq`/`prev` skip or fork the sender's chain.",
    "replayed": "The object (or its `seq`) was already applied.",
    "invalid_transition": "The object type is not allowed in the connection's status.",
    "not_a_party": "The sender is neither party of the connection.",
    "wrong_connection": "`cid` (or `thid`/`body.invitation`) does not name this connection.",
    "invitation_expired": "The invitation's `expires_time` has passed.",
    "invitation_used": "A single-use invitation has already been accepted (server).",
    "invitation_not_for_you": (
        "The inviter answers its own invitation, or the invitation is addressed (`to`) to "
        "other DIDs."
    ),
    "reinvite_blocked": "The other party severed with `block_reinvite` (server).",
    "connection_not_active": "The connection is not active (invited or declined).",
    "connection_severed": "The connection has been severed.",
    "grant_exists": "A grant for that grantor, scope and topic is already in force.",
    "grant_not_found": "No grant with that id from the sender in this connection.",
    "grant_conflict": "Compare-and-swap failed: the grant named is no longer current.",
    "invalid_period": "A rate period is not a W/D/H/M/S ISO 8601 duration of 1 s to 366 days.",
    "invalid_time_zone": "Quiet hours name an unknown IANA time zone.",
    "mute_not_found": "Unmute without a mute in force.",
    "favour_not_found": "A favour step names no favour of this connection.",
    "favour_invalid_transition": (
        "The favour step is not allowed in the favour's status, or by this party."
    ),
    "favour_return_invalid": "`return_of` does not name an unreturned favour the requester did.",
    "not_permitted": "Base of the delivery refusals.",
    "message_expired": "The message or favour request expired before delivery.",
    "grant_missing": "No grant of the recipient covers the scope and topic.",
    "grant_expired": "The covering grant's `expires_time` has passed.",
    "muted": "The recipient muted the sender in `reject` mode and the topic is not exempt.",
    "quiet_hours": "The covering grant's quiet hours are in force (`retry_after`).",
    "rate_exceeded": "The covering grant's rate cap is used up (`retry_after`).",
}

_REGION = re.compile(
    r"(<!-- BEGIN GENERATED: (?P<name>[a-z\-]+) -->\n)(?P<body>.*?)(<!-- END GENERATED -->)",
    re.DOTALL,
)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _family(cls: type[errors.ProtocolError]) -> str:
    base = cls.__mro__[1]
    return f"`{base.code}`" if issubclass(base, errors.ProtocolError) else "—"


def errors_table() -> str:
    rows = []
    for code, cls in sorted(errors.ERRORS_BY_CODE.items()):
        if code not in ERROR_DESCRIPTIONS:
            raise KeyError(f"describe error code {code!r} in ERROR_DESCRIPTIONS")
        rows.append([f"`{code}`", f"`{cls.__name__}`", _family(cls), ERROR_DESCRIPTIONS[code]])
    return _table(["code", "class", "family", "meaning"], rows)


def types_table() -> str:
    rows = []
    for mtype in MessageType:
        model = BODY_MODELS[mtype]
        fields = ", ".join(
            f"`{name}`" + ("" if info.is_required() else "?")
            for name, info in model.model_fields.items()
        )
        chain = "no (seq 0)" if mtype in UNCHAINED else "either" if mtype in EITHER else "yes"
        rows.append([f"`{mtype.value}`", f"`{model.__name__}`", chain, fields or "(empty)"])
    return f"Type URI = `{TYPE_PREFIX}` + name.\n\n" + _table(
        ["name", "body model", "chained", "body members (`?` = optional)"], rows
    )


def connection_table() -> str:
    rows = []
    for status, row in CONNECTION_TRANSITIONS.items():
        if not row:
            rows.append([f"`{status}`", "(none: terminal)", "—"])
        for mtype, new in row.items():
            rows.append([f"`{status}`", f"`{mtype.value}`", f"`{new}`"])
    return _table(["status", "object type", "status after"], rows)


def favour_table() -> str:
    rows = [
        [f"`{status}`", f"`{mtype.value}`", actor, f"`{new}`"]
        for (status, mtype), (actor, new) in FAVOUR_TRANSITIONS.items()
    ]
    return _table(["favour status", "step", "only by", "status after"], rows)


def refusals_table() -> str:
    rows = [[str(i), f"`{code}`"] for i, code in enumerate(REFUSAL_CODES, 1)]
    return _table(["#", "refusal code (first failing check wins)"], rows)


def limits_table() -> str:
    limits = strict_json.DEFAULT_LIMITS
    rows = [
        [
            "document size (the text, before parsing)",
            f"{limits.max_bytes} bytes",
            "`json_too_large`",
        ],
        [
            "signed object size (its canonical form, `proof` and `payload` included)",
            f"{envelope.MAX_OBJECT_BYTES} bytes",
            "`json_too_large`",
        ],
        ["nesting depth (arrays + objects)", str(limits.max_depth), "`json_too_deep`"],
        ["integer range", f"±{strict_json.MAX_SAFE_INTEGER}", "`json_integer_out_of_range`"],
    ]
    return _table(["limit", "value", "error"], rows)


GENERATORS: dict[str, Callable[[], str]] = {
    "errors": errors_table,
    "types": types_table,
    "connection": connection_table,
    "favour": favour_table,
    "refusals": refusals_table,
    "limits": limits_table,
}


def render_regions(text: str) -> str:
    """``text`` with every generated region rewritten; unknown region names fail."""
    seen: set[str] = set()

    def fill(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in GENERATORS:
            raise KeyError(f"unknown generated region {name!r}")
        seen.add(name)
        return match.group(1) + GENERATORS[name]() + match.group(4)

    out = _REGION.sub(fill, text)
    missing = set(GENERATORS) - seen
    if missing:
        raise KeyError(f"spec/protocol.md lacks generated regions {sorted(missing)}")
    return out
