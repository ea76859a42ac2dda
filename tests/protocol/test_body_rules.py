"""Body rules as verification reports them: periods, times of day, zones, and null.

Each case signs an invitation whose body carries one fault, with no check on the signer's
side (the fault must reach the verifier), and asserts the code ``verify`` gives it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from rapport_protocol import SigningKey, errors, sign, verify
from rapport_protocol.canonical import b64url, canonicalize
from rapport_protocol.types import MessageType, QuietHours, RateCap

T0 = 1_800_000_000
KEY = SigningKey.from_seed(b"\x31" * 32)
LONDON = {"start": "22:00", "end": "07:00", "tz": "Europe/London"}


def signed(mtype: MessageType, body: dict[str, Any]) -> dict[str, Any]:
    """An unchained object with ``body`` exactly as given, correctly signed."""
    fields = {"type": mtype.uri, "from": KEY.did, "created_time": T0, "seq": 0, "body": body}
    signing_input = canonicalize(fields)
    return {
        "id": hashlib.sha256(signing_input).hexdigest(),
        **fields,
        "proof": {"type": "ed25519-jcs", "kid": KEY.kid, "sig": b64url(KEY.sign(signing_input))},
    }


def invitation(**spec: Any) -> dict[str, Any]:
    """An invitation offering one message grant with ``spec``'s members."""
    grant = {"scope": "message", "topic": "news", **spec}
    return signed(MessageType.INVITATION, {"label": "R", "kind": "business", "offered": [grant]})


def code_of(raw: dict[str, Any]) -> str | None:
    try:
        verify(raw, now=T0)
    except errors.ProtocolError as exc:
        assert errors.ERRORS_BY_CODE[exc.code] is type(exc)
        return exc.code
    return None


@pytest.mark.parametrize(
    ("period", "code"),
    [
        ("P1D", None),
        ("PT12H", None),
        ("P1W2D", None),
        ("PT1S", None),
        ("P366D", None),
        ("P1D\n", "invalid_period"),  # a regex $ matches before a final newline
        ("P\u0661D", "invalid_period"),  # Arabic-Indic digit one
        ("P\uff11D", "invalid_period"),  # fullwidth digit one
        ("PT\u0661\u0662H", "invalid_period"),
        ("P1D ", "invalid_period"),
        (" P1D", "invalid_period"),
        ("p1d", "invalid_period"),
        ("P1M", "invalid_period"),  # months have no fixed length
        ("P1Y", "invalid_period"),
        ("P", "invalid_period"),
        ("PT", "invalid_period"),
        ("P1DT", "invalid_period"),
        ("P0D", "invalid_period"),
        ("P367D", "invalid_period"),
        ("P1.5D", "invalid_period"),
        ("P" + "1" * 40 + "S", "invalid_period"),  # over 32 characters
        (86400, "invalid_body"),  # not a string at all
    ],
)
def test_rate_period_is_ascii_exact_and_reported_as_invalid_period(
    period: object, code: str | None
) -> None:
    assert code_of(invitation(rate={"count": 1, "period": period})) == code
    if code is None:
        assert isinstance(period, str)
        assert RateCap.model_validate({"count": 1, "period": period}).seconds > 0
    elif code == "invalid_period":
        with pytest.raises(errors.InvalidPeriod):
            RateCap.model_validate({"count": 1, "period": period})


@pytest.mark.parametrize(
    ("start", "code"),
    [
        ("22:00", None),
        ("00:00", None),
        ("23:59", None),
        ("\u0662\u0662:00", "invalid_body"),  # Arabic-Indic "22"
        ("\uff12\uff12:00", "invalid_body"),  # fullwidth "22"
        ("22:00\n", "invalid_body"),
        ("2200", "invalid_body"),
        ("2:00", "invalid_body"),
        ("24:00", "invalid_body"),
        ("22:60", "invalid_body"),
    ],
)
def test_quiet_hours_times_are_ascii_hh_mm(start: str, code: str | None) -> None:
    assert code_of(invitation(quiet_hours={**LONDON, "start": start})) == code
    assert code_of(invitation(quiet_hours={**LONDON, "end": start})) == code


@pytest.mark.parametrize(
    ("tz", "code"),
    [
        ("Europe/London", None),
        ("UTC", None),
        ("America/New_York", None),
        ("Mars/Olympus", "invalid_time_zone"),
        ("Europe", "invalid_time_zone"),  # a directory of the database (used to crash)
        ("localtime", "invalid_time_zone"),  # a system link, not an IANA zone
        ("posix/Europe/London", "invalid_time_zone"),
        ("right/UTC", "invalid_time_zone"),
        ("../../etc/passwd", "invalid_time_zone"),
        ("UTC\n", "invalid_time_zone"),
        ("", "invalid_time_zone"),
        ("A" * 65, "invalid_time_zone"),
        (0, "invalid_body"),
    ],
)
def test_quiet_hours_zone_is_an_iana_zone_and_reported_as_invalid_time_zone(
    tz: object, code: str | None
) -> None:
    assert code_of(invitation(quiet_hours={**LONDON, "tz": tz})) == code
    if code == "invalid_time_zone":
        with pytest.raises(errors.InvalidTimeZone):
            QuietHours.model_validate({**LONDON, "tz": tz})


def chained(mtype: MessageType, body: dict[str, Any]) -> dict[str, Any]:
    """A chained object (seq 1 in a made-up connection) with ``body``, correctly signed."""
    fields = {"type": mtype.uri, "from": KEY.did, "cid": "c" * 32, "created_time": T0}
    fields |= {"seq": 1, "body": body}
    signing_input = canonicalize(fields)
    return {
        "id": hashlib.sha256(signing_input).hexdigest(),
        **fields,
        "proof": {"type": "ed25519-jcs", "kid": KEY.kid, "sig": b64url(KEY.sign(signing_input))},
    }


def without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


INVITE = {"label": "R", "kind": "business"}
EMPTY_DIGEST = hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize(
    ("mtype", "body"),
    [
        (MessageType.INVITATION, {**INVITE, "goal": None}),
        (MessageType.INVITATION, {**INVITE, "max_uses": None}),
        (MessageType.INVITATION, {**INVITE, "nonce": None}),
        (
            MessageType.INVITATION,
            {**INVITE, "offered": [{"scope": "message", "topic": "x", "purpose": None}]},
        ),
        (
            MessageType.INVITATION,
            {**INVITE, "offered": [{"scope": "message", "topic": "x", "rate": None}]},
        ),
        (
            MessageType.MESSAGE,
            {"topic": "news", "purpose": None, "content_length": 0, "content_digest": EMPTY_DIGEST},
        ),
        (MessageType.MUTE, {"until": None}),
        (MessageType.SEVER, {"data": "delete", "reason": None}),
        (MessageType.FAVOUR_ACCEPT, {"favour": "f" * 64, "note": None}),
    ],
)
def test_null_anywhere_in_a_body_is_invalid_body(mtype: MessageType, body: dict[str, Any]) -> None:
    build = signed if mtype in (MessageType.INVITATION, MessageType.MESSAGE) else chained
    assert code_of(build(mtype, body)) == "invalid_body"
    assert code_of(build(mtype, without_nulls(body))) is None  # omitting it is the one spelling
    headers: dict[str, Any] = {} if build is signed else {"cid": "c" * 32, "seq": 1}
    with pytest.raises(errors.InvalidBody):
        sign(KEY, mtype, body, created_time=T0, **headers)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"label": "R", "kind": "business", "goal": None}, errors.InvalidBody),
        (
            {
                "label": "R",
                "kind": "business",
                "offered": [
                    {"scope": "message", "topic": "x", "rate": {"count": 1, "period": "P1M"}}
                ],
            },
            errors.InvalidPeriod,
        ),
        (
            {
                "label": "R",
                "kind": "business",
                "offered": [
                    {"scope": "message", "topic": "x", "quiet_hours": {**LONDON, "tz": "X"}}
                ],
            },
            errors.InvalidTimeZone,
        ),
    ],
)
def test_sign_refuses_what_verify_refuses_with_the_same_code(
    body: dict[str, Any], error: type[errors.ProtocolError]
) -> None:
    with pytest.raises(error) as info:
        sign(KEY, MessageType.INVITATION, body, created_time=T0)
    assert type(info.value) is error
    assert code_of(signed(MessageType.INVITATION, body)) == error.code


def test_a_bad_new_key_in_a_rotation_is_still_invalid_body() -> None:
    raw = signed(MessageType.KEY_ROTATION, {"new_key": "did:key:z6Mk0OIl"})
    assert code_of(raw) == "invalid_body"
