"""The signed object: one envelope shape for every protocol message.

Headers follow DIDComm v2 plaintext messages (``id``, ``type``, ``from``, ``to``, ``thid``,
``created_time``, ``expires_time``, ``body``), plus ``cid`` (connection id), a per-sender
hash chain (``seq``, ``prev``) and an Ed25519 ``proof``.

Signing input: the RFC 8785 canonical bytes of the object without ``id``, ``proof`` and
``payload``. ``id`` is the lowercase hex SHA-256 of those same bytes, so one
canonicalisation serves both. Optional members are omitted, never ``null`` (in the body
too, at any depth).

Size: the canonical form of the whole object (proof and payload included) is at most
:data:`MAX_OBJECT_BYTES`. Canonical JSON is the shortest JSON text of a Rapport object, so
an object within the limit always fits the strict parser's byte limit when sent in
canonical form; :func:`sign` refuses to produce a larger one.

A message's content travels detached in ``payload`` (a string), committed to by the signed
``body.content_digest``: the content can be erased (a ``delete`` instruction) while the
signed log still verifies.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from . import canonical, errors, identity, strict_json
from .types import BODY_MODELS, EITHER, TYPES_BY_URI, UNCHAINED, MessageBody, MessageType

PROOF_TYPE = "ed25519-jcs"
DEFAULT_SKEW_SECONDS = 300

_REQUIRED = frozenset({"id", "type", "from", "created_time", "seq", "body", "proof"})
_OPTIONAL = frozenset({"to", "cid", "thid", "expires_time", "prev", "payload"})
_UNSIGNED = ("id", "proof", "payload")
_MEMBERS = _REQUIRED | _OPTIONAL
_PROOF_MEMBERS = frozenset({"type", "kid", "sig"})
_MAX_SAFE = 2**53 - 1
MAX_OBJECT_BYTES = strict_json.DEFAULT_MAX_BYTES
"""Largest canonical form of a signed object, proof and payload included (64 KiB)."""


@dataclass(frozen=True, slots=True)
class SignedObject:
    """A verified (or freshly signed) protocol object.

    ``raw`` is the exact JSON object as signed; ``body`` is its typed body model.
    """

    id: str
    type: MessageType
    sender: str
    to: tuple[str, ...]
    cid: str | None
    thid: str | None
    created_time: int
    expires_time: int | None
    seq: int
    prev: str | None
    body: BaseModel
    kid: str
    raw: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The wire form (a fresh shallow copy of ``raw``)."""
        return dict(self.raw)

    @property
    def payload(self) -> str | None:
        """A message's detached content, when it is still attached."""
        value = self.raw.get("payload")
        return value if isinstance(value, str) else None

    @property
    def broadcast(self) -> bool:
        """True for a message signed once for many connections (no ``cid``)."""
        return self.type is MessageType.MESSAGE and self.cid is None

    def canonical_bytes(self) -> bytes:
        """RFC 8785 bytes of the whole object, proof included (for storage and transport)."""
        return canonical.canonicalize(self.raw)


def _is_int(value: Any) -> bool:
    return type(value) is int and -_MAX_SAFE <= value <= _MAX_SAFE


def _str(raw: dict[str, Any], name: str, max_len: int = 256) -> str:
    value = raw[name]
    if type(value) is not str or not 0 < len(value) <= max_len:
        raise errors.EnvelopeError(f"{name!r} must be a non-empty string of at most {max_len}")
    return value


def object_size(raw: dict[str, Any]) -> int:
    """Bytes of the RFC 8785 canonical form of ``raw`` (the whole object, as sent).

    For JSON without fractions (every Rapport object) compact ``json.dumps`` without ASCII
    escaping writes each string with exactly JCS's escapes and differs from JCS only in
    member order, so the lengths are equal; the C encoder is much cheaper than a second
    canonicalisation.
    """
    try:
        text = json.dumps(raw, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        raise errors.EnvelopeError("a signed object is a JSON object") from None
    return len(text.encode("utf-8", "surrogatepass"))


def check_size(raw: dict[str, Any]) -> None:
    """Raise ``json_too_large`` when ``raw``'s canonical form exceeds the object limit."""
    size = object_size(raw)
    if size > MAX_OBJECT_BYTES:
        raise errors.JsonTooLarge(
            f"the object's canonical form is {size} bytes, more than {MAX_OBJECT_BYTES}"
        )


def _has_null(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if node is None:
            return True
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _check_shape(raw: Any) -> tuple[MessageType, BaseModel]:
    if not isinstance(raw, dict):
        raise errors.EnvelopeError("a signed object is a JSON object")
    keys = raw.keys()
    if not keys >= _REQUIRED:
        raise errors.EnvelopeError(f"missing members: {sorted(_REQUIRED - keys)}")
    if not keys <= _MEMBERS:
        raise errors.EnvelopeError(f"unknown members: {sorted(keys - _MEMBERS)}")
    if any(value is None for value in raw.values()):
        raise errors.EnvelopeError("optional members are omitted, never null")
    type_uri = _str(raw, "type")
    mtype = TYPES_BY_URI.get(type_uri)
    if mtype is None:
        raise errors.UnknownType(f"unknown type {type_uri!r}")
    for name in ("id", "from", "cid", "thid", "prev"):
        if name in raw:
            _str(raw, name)
    for name in ("created_time", "expires_time", "seq"):
        if name in raw and not (_is_int(raw[name]) and raw[name] >= 0):
            raise errors.EnvelopeError(f"{name!r} must be a non-negative integer")
    if "to" in raw:
        to = raw["to"]
        if type(to) is not list or not 0 < len(to) <= 8 or any(type(d) is not str for d in to):
            raise errors.EnvelopeError("'to' must be a list of 1 to 8 DIDs")
    proof = raw["proof"]
    if not isinstance(proof, dict) or proof.keys() != _PROOF_MEMBERS:
        raise errors.EnvelopeError("'proof' has exactly the members type, kid and sig")
    if (
        proof["type"] != PROOF_TYPE
        or type(proof["kid"]) is not str
        or type(proof["sig"]) is not str
    ):
        raise errors.EnvelopeError(f"'proof.type' must be {PROOF_TYPE!r}")
    if type(raw["body"]) is not dict:
        raise errors.EnvelopeError("'body' must be an object")
    chained = mtype not in UNCHAINED and (mtype not in EITHER or "cid" in raw)
    if chained != ("cid" in raw) or (not chained and raw["seq"] != 0):
        raise errors.EnvelopeError("connection objects carry cid and seq ≥ 1; others seq 0")
    if chained and raw["seq"] < 1:
        raise errors.EnvelopeError("seq starts at 1")
    if ("prev" in raw) != (chained and raw["seq"] > 1):
        raise errors.EnvelopeError("'prev' is present exactly when seq > 1")
    if "payload" in raw and (mtype is not MessageType.MESSAGE or type(raw["payload"]) is not str):
        raise errors.EnvelopeError("only a message carries a payload, as a string")
    if _has_null(raw["body"]):
        # One spelling per body: an absent optional member is omitted, as in the envelope.
        raise errors.InvalidBody("optional body members are omitted, never null")
    try:
        body = BODY_MODELS[mtype].model_validate(raw["body"])
    except ValidationError as exc:
        raise errors.InvalidBody(_summarise(exc)) from None
    except errors.InvalidBody:
        raise  # invalid_body itself, or its finer codes (invalid_period, invalid_time_zone)
    except errors.ProtocolError as exc:
        raise errors.InvalidBody(exc.detail) from None  # e.g. a bad DID in key-rotation
    return mtype, body


def payload_digest(payload: str) -> tuple[str, int]:
    """``(content_digest, content_length)`` for a message payload."""
    data = payload.encode("utf-8")
    return hashlib.sha256(data).hexdigest(), len(data)


def check_payload(body: MessageBody, payload: str) -> None:
    """Raise ``payload_mismatch`` unless ``payload`` is the content the body commits to."""
    try:
        digest, length = payload_digest(payload)
    except UnicodeEncodeError:
        raise errors.PayloadMismatch("payload is not valid Unicode") from None
    if digest != body.content_digest or length != body.content_length:
        raise errors.PayloadMismatch("payload does not match body.content_digest")


def _summarise(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "body"
    return f"body.{where}: {first.get('msg', 'invalid')}"


def verify(
    raw: Any,
    *,
    now: int | None = None,
    skew: int = DEFAULT_SKEW_SECONDS,
    text_size: int | None = None,
) -> SignedObject:
    """Check a parsed object completely except its place in a chain, and return it typed.

    Checks, in order: size (``json_too_large``: the canonical form of the whole object is
    at most :data:`MAX_OBJECT_BYTES`), shape and body (``invalid_object``, ``unknown_type``,
    ``invalid_body``, ``invalid_period``, ``invalid_time_zone``),
    the ``from`` DID (``invalid_did``, ``weak_public_key``), ``proof.kid`` belongs to ``from``
    (``invalid_kid``, ``kid_mismatch``), ``id`` is the content hash (``id_mismatch``), the
    signature (``bad_signature``), and, when ``now`` is given, ``created_time`` within
    ``skew`` seconds of ``now`` (``clock_skew``) and ``expires_time`` after ``now``
    (``object_expired``). Chain continuity needs state: see :func:`rapport_protocol.state.apply`.

    ``text_size``: the length in bytes of the strict JSON text ``raw`` was parsed from (or
    of a text containing it). The canonical form is never longer than such a text (it
    drops whitespace, and each of its tokens is the shortest spelling JSON allows), so an
    object from a text within :data:`MAX_OBJECT_BYTES` needs no size computation.
    """
    if isinstance(raw, dict) and (text_size is None or text_size > MAX_OBJECT_BYTES):
        check_size(raw)
    mtype, body = _check_shape(raw)
    sender = raw["from"]
    verify_key = identity.parse_did(sender)
    for did in raw.get("to", ()):
        identity.parse_did(did)
    proof = raw["proof"]
    if identity.did_of_kid(proof["kid"]) != sender:
        raise errors.KidMismatch("proof.kid does not belong to 'from'")
    unsigned = {k: v for k, v in raw.items() if k not in _UNSIGNED}
    signing_input = canonical.canonicalize(unsigned)
    if hashlib.sha256(signing_input).hexdigest() != raw["id"]:
        raise errors.IdMismatch("id is not the SHA-256 of the canonical object")
    try:
        signature = canonical.b64url_decode(proof["sig"])
    except ValueError:
        raise errors.BadSignature("signature is not base64url") from None
    if not verify_key.verify(signing_input, signature):
        raise errors.BadSignature("signature does not verify")
    if "payload" in raw:
        assert isinstance(body, MessageBody)
        check_payload(body, raw["payload"])
    obj = _typed(raw, mtype, body)
    if now is not None:
        check_time(obj, now, skew)
    return obj


def check_time(obj: SignedObject, now: int, skew: int = DEFAULT_SKEW_SECONDS) -> None:
    """Raise ``clock_skew`` or ``object_expired`` when ``obj`` is not timely at ``now``."""
    if abs(obj.created_time - now) > skew:
        raise errors.ClockSkew(f"created_time is more than {skew} s from now", now=now)
    if obj.expires_time is not None and obj.expires_time <= now:
        raise errors.ObjectExpired("expires_time has passed")


def parse(
    data: bytes | str,
    *,
    now: int | None = None,
    skew: int = DEFAULT_SKEW_SECONDS,
    limits: strict_json.Limits = strict_json.DEFAULT_LIMITS,
) -> SignedObject:
    """Strictly parse signed bytes and :func:`verify` them."""
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    return verify(strict_json.loads(data, limits), now=now, skew=skew, text_size=size)


def _typed(raw: dict[str, Any], mtype: MessageType, body: BaseModel) -> SignedObject:
    return SignedObject(
        id=raw["id"],
        type=mtype,
        sender=raw["from"],
        to=tuple(raw.get("to", ())),
        cid=raw.get("cid"),
        thid=raw.get("thid"),
        created_time=raw["created_time"],
        expires_time=raw.get("expires_time"),
        seq=raw["seq"],
        prev=raw.get("prev"),
        body=body,
        kid=raw["proof"]["kid"],
        raw=raw,
    )


def sign(
    key: identity.SigningKey,
    mtype: MessageType,
    body: BaseModel | dict[str, Any],
    *,
    created_time: int,
    cid: str | None = None,
    seq: int = 0,
    prev: str | None = None,
    to: tuple[str, ...] | list[str] | None = None,
    thid: str | None = None,
    expires_time: int | None = None,
    payload: str | None = None,
) -> SignedObject:
    """Build and sign a protocol object with ``key``.

    ``body`` may be a body model or a plain dict (validated against the type's model).
    Optional headers left as ``None`` are omitted. For a message, pass the content as
    ``payload`` and leave ``content_digest``/``content_length`` out of ``body``: they are
    computed here.

    Raises what :func:`verify` would raise for the result: ``invalid_body`` (and its finer
    codes) for a bad body, including a ``null`` member, and ``json_too_large`` when the
    object's canonical form, payload included, is over :data:`MAX_OBJECT_BYTES` (a payload
    of many characters JSON must escape can reach it below the 32768-byte
    ``content_length`` limit).
    """
    body_json = (
        body.model_dump(mode="json", exclude_none=True) if isinstance(body, BaseModel) else body
    )
    if payload is not None:
        digest, length = payload_digest(payload)
        body_json = {**body_json, "content_digest": digest, "content_length": length}
    unsigned: dict[str, Any] = {
        "type": mtype.uri,
        "from": key.did,
        "created_time": created_time,
        "seq": seq,
        "body": body_json,
    }
    for name, value in (
        ("cid", cid),
        ("prev", prev),
        ("thid", thid),
        ("expires_time", expires_time),
    ):
        if value is not None:
            unsigned[name] = value
    if to:
        unsigned["to"] = list(to)
    signing_input = canonical.canonicalize(unsigned)
    raw = {
        "id": hashlib.sha256(signing_input).hexdigest(),
        **unsigned,
        "proof": {
            "type": PROOF_TYPE,
            "kid": key.kid,
            "sig": canonical.b64url(key.sign(signing_input)),
        },
    }
    if payload is not None:
        raw["payload"] = payload
    check_size(raw)
    mtype_checked, typed_body = _check_shape(raw)
    return _typed(raw, mtype_checked, typed_body)
