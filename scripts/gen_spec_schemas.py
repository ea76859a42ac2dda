"""JSON Schema 2020-12 documents for every message type: spec/schemas/<type>.json.

Each schema describes the whole signed object (envelope, proof and the type's body). The
body part is generated from the pydantic body model in ``rapport_protocol.types``; the
envelope part mirrors ``rapport_protocol.envelope._check_shape``. A schema is a structural
check only: signatures, ids, DIDs (beyond their syntax), chains and state rules are not
expressible in JSON Schema and are checked by the protocol.
"""

from __future__ import annotations

import json
from typing import Any

from rapport_protocol.envelope import PROOF_TYPE
from rapport_protocol.types import BODY_MODELS, EITHER, UNCHAINED, MessageType

SCHEMA_BASE = "https://rapport.dev/protocol/1.0/schemas/"
MAX_SAFE = 2**53 - 1
_HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_DID = {"type": "string", "pattern": "^did:key:z6Mk[1-9A-HJ-NP-Za-km-z]+$", "maxLength": 256}
_STRING = {"type": "string", "minLength": 1, "maxLength": 256}
_TIME = {"type": "integer", "minimum": 0, "maximum": MAX_SAFE}


def _without_null(node: Any) -> Any:
    """``node`` with the ``null`` alternative pydantic writes for optional members removed.

    An optional body member is omitted, never ``null`` (spec §5.1), so ``X | None`` is
    just ``X`` on the wire, and its default is its absence.
    """
    if isinstance(node, list):
        return [_without_null(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _without_null(v) for k, v in node.items()}
    if out.get("default", ...) is None:
        del out["default"]
    branches = out.get("anyOf")
    if isinstance(branches, list) and {"type": "null"} in branches:
        rest = [b for b in branches if b != {"type": "null"}]
        del out["anyOf"]
        if len(rest) == 1:
            out = {**rest[0], **out}
        else:
            out["anyOf"] = rest
    return out


def _body_schema(mtype: MessageType) -> tuple[dict[str, Any], dict[str, Any]]:
    """(body schema, $defs) for one type, from its pydantic model."""
    schema = _without_null(BODY_MODELS[mtype].model_json_schema(mode="validation"))
    defs = schema.pop("$defs", {})
    return schema, defs


def envelope_schema(mtype: MessageType) -> dict[str, Any]:
    """The JSON Schema of a signed object of type ``mtype``."""
    body, defs = _body_schema(mtype)
    properties: dict[str, Any] = {
        "id": {**_HEX64, "description": "Lowercase hex SHA-256 of the signing input."},
        "type": {"const": mtype.uri},
        "from": {**_DID, "description": "The signer's did:key (Ed25519)."},
        "to": {"type": "array", "items": _DID, "minItems": 1, "maxItems": 8},
        "cid": {**_STRING, "description": "Connection id (32 hex digits when derived)."},
        "thid": {**_STRING, "description": "Thread id: the object this one answers."},
        "created_time": _TIME,
        "expires_time": _TIME,
        "seq": _TIME,
        "prev": {**_STRING, "description": "id of the sender's previous chained object."},
        "body": body,
        "proof": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type", "kid", "sig"],
            "properties": {
                "type": {"const": PROOF_TYPE},
                "kid": {"type": "string", "pattern": "^did:key:z6Mk[1-9A-HJ-NP-Za-km-z]+#z6Mk"},
                "sig": {"type": "string", "pattern": "^[A-Za-z0-9_-]{86}$"},
            },
        },
    }
    required = ["id", "type", "from", "created_time", "seq", "body", "proof"]
    conditions: list[dict[str, Any]] = []
    if mtype is MessageType.MESSAGE:
        properties["payload"] = {"type": "string", "description": "Detached content."}
    if mtype in UNCHAINED:
        properties["seq"] = {"const": 0}
        unchained: dict[str, Any] = {
            "not": {"anyOf": [{"required": ["cid"]}, {"required": ["prev"]}]}
        }
        conditions.append(unchained)
    elif mtype in EITHER:
        # With cid: a chained object (seq ≥ 1, prev exactly when seq > 1). Without: a
        # broadcast (seq 0, no prev).
        conditions.append(
            {
                "if": {"required": ["cid"]},
                "then": {"properties": {"seq": {"minimum": 1}}},
                "else": {"properties": {"seq": {"const": 0}}, "not": {"required": ["prev"]}},
            }
        )
    else:
        required.append("cid")
        properties["seq"] = {**_TIME, "minimum": 1}
    if mtype not in UNCHAINED:
        conditions.append(
            {
                "if": {"properties": {"seq": {"minimum": 2}}},
                "then": {"required": ["prev"]},
                "else": {"not": {"required": ["prev"]}},
            }
        )
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{SCHEMA_BASE}{mtype.value}.json",
        "title": f"Rapport {mtype.value} object",
        "description": (
            "A signed Rapport protocol object (spec/protocol.md). Optional members are "
            "omitted, never null. Generated by scripts/gen_spec_schemas.py: do not edit."
        ),
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": properties,
    }
    if conditions:
        schema["allOf"] = conditions
    if defs:
        schema["$defs"] = defs
    return schema


def render() -> dict[str, bytes]:
    """Every schema file, by path relative to the repository root."""
    out: dict[str, bytes] = {}
    for mtype in MessageType:
        text = json.dumps(envelope_schema(mtype), indent=2, sort_keys=True, ensure_ascii=False)
        out[f"spec/schemas/{mtype.value}.json"] = (text + "\n").encode()
    return out
