"""Key files (permissions, formats, env) and webhook verification (Standard Webhooks)."""

from __future__ import annotations

import base64
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rapport_client import Client, keys, webhooks
from rapport_client.keys import KeyFileError
from rapport_client.webhooks import WebhookVerificationError
from rapport_protocol import SigningKey
from standardwebhooks.webhooks import Webhook

NOW = 1_760_000_000
BODY = b'{"type":"message","timestamp":"2025-10-09T08:53:20Z","data":{"id":1}}'


def test_saved_key_is_owner_only_and_loads_back(tmp_path: Path) -> None:
    key = SigningKey.generate()
    path = keys.save_key(key, tmp_path / "sub" / "key.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert keys.load_key(path).did == key.did
    assert json.loads(path.read_text())["did"] == key.did


def test_saving_over_an_existing_key_is_refused(tmp_path: Path) -> None:
    path = keys.save_key(SigningKey.generate(), tmp_path / "key.json")
    with pytest.raises(KeyFileError, match="exists"):
        keys.save_key(SigningKey.generate(), path)
    other = SigningKey.generate()
    keys.save_key(other, path, overwrite=True)
    assert keys.load_key(path).did == other.did


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o644, 0o666])
def test_group_or_world_accessible_key_file_is_refused(tmp_path: Path, mode: int) -> None:
    path = keys.save_key(SigningKey.generate(), tmp_path / "key.json")
    os.chmod(path, mode)
    with pytest.raises(KeyFileError, match="too open"):
        keys.load_key(path)
    with pytest.raises(KeyFileError):
        Client("http://x", key_file=path)


def test_key_file_written_by_rapport_keygen_loads_and_is_not_overwritten(tmp_path: Path) -> None:
    from rapport_cli.main import app
    from typer.testing import CliRunner

    path = tmp_path / "k.json"
    first = CliRunner().invoke(app, ["keygen", "--out", str(path)])
    assert first.exit_code == 0, first.output
    assert keys.load_key(path).did == first.output.strip()
    assert (path.stat().st_mode & 0o777) == 0o600
    again = CliRunner().invoke(app, ["keygen", "--out", str(path)])
    assert again.exit_code == 1
    assert keys.load_key(path).did == first.output.strip()


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"type": "other", "seed": "x"}',
        '{"type": "rapport-ed25519-key", "seed": "AAAA"}',
    ],
)
def test_malformed_key_files_are_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "key.json"
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError):
        keys.load_key(path)


def test_key_whose_did_does_not_match_its_seed_is_refused(tmp_path: Path) -> None:
    path = keys.save_key(SigningKey.generate(), tmp_path / "key.json")
    doc = json.loads(path.read_text())
    doc["did"] = SigningKey.generate().did
    path.write_text(json.dumps(doc))
    with pytest.raises(KeyFileError, match="does not match"):
        keys.load_key(path)


def test_key_from_environment_as_seed_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    key = SigningKey.generate()
    assert keys.key_from_env({}) is None
    seed_env = {keys.ENV_PRIVATE_KEY: keys.export_seed(key)}
    assert keys.key_from_env(seed_env).did == key.did  # type: ignore[union-attr]
    doc = {"type": keys.KEY_FILE_TYPE, "did": key.did, "seed": keys.export_seed(key)}
    monkeypatch.setenv(keys.ENV_PRIVATE_KEY, json.dumps(doc))
    assert Client("http://x").did == key.did
    monkeypatch.setenv(keys.ENV_PRIVATE_KEY, "garbage")
    with pytest.raises(KeyFileError):
        Client("http://x")


# --- webhooks -----------------------------------------------------------------------------


def _secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def _headers_signed_by_standardwebhooks(
    secret: str, msg_id: str, ts: int, body: bytes
) -> dict[str, str]:
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, tz=UTC), body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def test_v1_signature_made_by_the_standardwebhooks_library_verifies() -> None:
    secret = _secret()
    headers = _headers_signed_by_standardwebhooks(secret, "msg_1", NOW, BODY)
    assert webhooks.verify(BODY, headers, secret, now=NOW + 10) == json.loads(BODY)


def test_our_v1_signature_verifies_with_the_standardwebhooks_library() -> None:
    secret = _secret()
    ts = int(datetime.now(tz=UTC).timestamp())
    headers = webhooks.sign(BODY, msg_id="msg_2", timestamp=ts, secret=secret)
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b + b" "),
        lambda h, b: ({**h, "webhook-id": "msg_other"}, b),
        lambda h, b: ({**h, "webhook-timestamp": str(NOW + 1)}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
        lambda h, b: ({**h, "webhook-signature": "v1,AAAA v2,zzz"}, b),
    ],
)
def test_tampered_v1_deliveries_are_refused(tamper) -> None:  # type: ignore[no-untyped-def]
    secret = _secret()
    headers, body = tamper(_headers_signed_by_standardwebhooks(secret, "msg_1", NOW, BODY), BODY)
    with pytest.raises(WebhookVerificationError):
        webhooks.verify(body, headers, secret, now=NOW)


def test_wrong_secret_is_refused() -> None:
    headers = _headers_signed_by_standardwebhooks(_secret(), "msg_1", NOW, BODY)
    with pytest.raises(WebhookVerificationError):
        webhooks.verify(BODY, headers, _secret(), now=NOW)


@pytest.mark.parametrize(("skew", "ok"), [(-300, True), (300, True), (-301, False), (301, False)])
def test_timestamp_tolerance_is_five_minutes(skew: int, ok: bool) -> None:
    secret = _secret()
    headers = _headers_signed_by_standardwebhooks(secret, "m", NOW, BODY)
    if ok:
        webhooks.verify(BODY, headers, secret, now=NOW + skew)
    else:
        with pytest.raises(WebhookVerificationError, match="tolerance"):
            webhooks.verify(BODY, headers, secret, now=NOW + skew)


def _v1a_headers(key: SigningKey, msg_id: str, ts: int, body: bytes) -> dict[str, str]:
    sig = key.sign(f"{msg_id}.{ts}.".encode() + body)
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
            "webhook-signature": "v1,bm9wZQ== v1a," + base64.b64encode(sig).decode()}  # fmt: skip


def test_v1a_ed25519_signature_verifies_with_the_published_key() -> None:
    server_key = SigningKey.generate()
    public = "whpk_" + base64.b64encode(server_key.verify_key.public_key).decode()
    headers = _v1a_headers(server_key, "msg_9", NOW, BODY)
    assert webhooks.verify(BODY, headers, public, now=NOW)["data"] == {"id": 1}
    assert webhooks.verify(BODY, headers, server_key.verify_key, now=NOW)["type"] == "message"
    other = "whpk_" + base64.b64encode(SigningKey.generate().verify_key.public_key).decode()
    with pytest.raises(WebhookVerificationError):
        webhooks.verify(BODY, headers, other, now=NOW)
    with pytest.raises(WebhookVerificationError):
        webhooks.verify(BODY + b"x", headers, public, now=NOW)


def test_v1a_key_does_not_accept_an_hmac_only_delivery() -> None:
    secret = _secret()
    headers = _headers_signed_by_standardwebhooks(secret, "m", NOW, BODY)
    public = "whpk_" + base64.b64encode(SigningKey.generate().verify_key.public_key).decode()
    with pytest.raises(WebhookVerificationError, match="v1a"):
        webhooks.verify(BODY, headers, public, now=NOW)
