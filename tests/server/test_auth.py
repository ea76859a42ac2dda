"""Authentication: assertions in, key-bound tokens out; every bad assertion refused."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from rapport_protocol import MessageType, SigningKey

from tests.helpers import Actor, FakeClock, assertion

GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


async def token(http: httpx.AsyncClient, base: str, jwt: str) -> httpx.Response:
    return await http.post(f"{base}/v1/oauth/token", data={"grant_type": GRANT, "assertion": jwt})


def b64(data: dict) -> str:  # type: ignore[type-arg]
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_token_exchange_accepts_both_ed25519_alg_names(
    person: Actor, clock: FakeClock
) -> None:
    aud = f"{person.base_url}/v1/oauth/token"
    for alg in ("Ed25519", "EdDSA"):
        r = await token(person.http, person.base_url, assertion(person.key, aud, clock(), alg=alg))
        assert r.status_code == 200, r.text
        assert r.json()["token_type"] == "Bearer"


@pytest.mark.parametrize(
    "case",
    [
        "alg_none",
        "hs256_with_public_key",
        "wrong_aud",
        "expired",
        "future",
        "too_long",
        "other_key_kid",
        "no_jti",
        "iss_mismatch",
        "unknown_key",
        "garbage",
    ],
)
async def test_bad_assertions_are_refused(case: str, person: Actor, clock: FakeClock) -> None:
    aud = f"{person.base_url}/v1/oauth/token"
    now = clock()
    key = person.key
    if case == "alg_none":
        claims = {
            "iss": key.did,
            "sub": key.did,
            "aud": aud,
            "iat": now,
            "exp": now + 60,
            "jti": "x" * 16,
        }
        jwt = b64({"alg": "none", "kid": key.kid}) + "." + b64(claims) + "."
    elif case == "hs256_with_public_key":
        import hashlib
        import hmac

        header = b64({"alg": "HS256", "kid": key.kid})
        claims = {
            "iss": key.did,
            "sub": key.did,
            "aud": aud,
            "iat": now,
            "exp": now + 60,
            "jti": "y" * 16,
        }
        signing = f"{header}.{b64(claims)}"
        mac = hmac.new(key.verify_key.public_key, signing.encode(), hashlib.sha256).digest()
        jwt = signing + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    elif case == "wrong_aud":
        jwt = assertion(key, "https://elsewhere.example/v1/oauth/token", now)
    elif case == "expired":
        jwt = assertion(key, aud, now - 1000)
    elif case == "future":
        jwt = assertion(key, aud, now + 1000)
    elif case == "too_long":
        jwt = assertion(key, aud, now, lifetime=3600)
    elif case == "other_key_kid":
        other = SigningKey.generate()
        jwt = assertion(key, aud, now)
        _, body, sig = jwt.split(".")
        jwt = ".".join([b64({"alg": "Ed25519", "kid": other.kid, "typ": "JWT"}), body, sig])
    elif case == "no_jti":
        jwt = assertion(key, aud, now, jti="short")
    elif case == "iss_mismatch":
        jwt = assertion(key, aud, now, iss=SigningKey.generate().did)
    elif case == "unknown_key":
        jwt = assertion(SigningKey.generate(), aud, now)
    else:
        jwt = "not.a.jwt"
    r = await token(person.http, person.base_url, jwt)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_grant"
    assert r.headers["content-type"] == "application/problem+json"


async def test_replayed_assertion_is_refused(person: Actor, clock: FakeClock) -> None:
    jwt = assertion(person.key, f"{person.base_url}/v1/oauth/token", clock())
    assert (await token(person.http, person.base_url, jwt)).status_code == 200
    r = await token(person.http, person.base_url, jwt)
    assert r.status_code == 400 and r.json()["code"] == "invalid_grant"


async def test_unsupported_grant_type(person: Actor) -> None:
    r = await person.http.post(
        f"{person.base_url}/v1/oauth/token", data={"grant_type": "password", "assertion": "x"}
    )
    assert r.status_code == 400 and r.json()["code"] == "unsupported_grant_type"


async def test_tampered_and_missing_tokens(person: Actor) -> None:
    r = await person.http.get(f"{person.base_url}/v1/parties/me")
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
    r = await person.http.get(
        f"{person.base_url}/v1/parties/me",
        headers={"Authorization": "Bearer " + person.token[:-2] + "AA"},
    )
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"
    assert (await person.get("/v1/parties/me")).json()["did"] == person.did


async def test_token_expires(person: Actor, clock: FakeClock) -> None:
    assert (await person.get("/v1/parties/me")).status_code == 200  # checked once (and kept)
    clock.advance(901)
    r = await person.get("/v1/parties/me")
    assert r.status_code == 401 and r.json()["code"] == "token_expired"


async def test_register_twice_is_a_conflict(person: Actor, clock: FakeClock) -> None:
    r = await person.http.post(
        f"{person.base_url}/v1/parties",
        json={
            "kind": "person",
            "display_name": "Ann again",
            "assertion": assertion(person.key, f"{person.base_url}/v1/parties", clock()),
        },
    )
    assert r.status_code == 409 and r.json()["code"] == "already_registered"


async def test_key_rotation_retires_the_old_key(
    business: Actor, person: Actor, clock: FakeClock
) -> None:
    from tests.helpers import connect

    cid = await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
    new = SigningKey.generate()
    rotation = person.sign(MessageType.KEY_ROTATION, {"new_key": new.did})
    r = await person.post(
        "/v1/parties/me/keys",
        {
            "object": rotation,
            "assertion": assertion(new, f"{person.base_url}/v1/parties/me/keys", clock()),
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["did"] == new.did
    # The old token and the old key no longer work.
    assert (await person.get("/v1/parties/me")).status_code == 401
    old_login = await token(
        person.http,
        person.base_url,
        assertion(person.key, f"{person.base_url}/v1/oauth/token", clock()),
    )
    assert old_login.status_code == 400
    person.key = new
    await person.login()
    assert (await person.get("/v1/parties/me")).json()["did"] == new.did
    # The connection continues under the new key, and its log still verifies.
    r = await business.send(cid, "news", "after rotation")
    assert r.status_code == 201
    r = await person.send(cid, "anything", "x")
    assert r.status_code == 403 and r.json()["code"] == "grant_missing"
    from rapport_protocol import verify_log

    log = (await person.get(f"/v1/connections/{cid}/log")).json()["data"]
    assert verify_log([(e["object"], e["received_time"]) for e in log]).state.dids[1] == new.did
