"""Key files: the party's Ed25519 private key on disk, readable by its owner only.

Format (JSON): ``{"type": "rapport-ed25519-key", "did": "did:key:z6Mk…", "seed":
"<base64url 32-byte seed>"}`` — the same file ``rapport keygen`` writes. A key can also
come from the environment: ``RAPPORT_PRIVATE_KEY`` holds the base64url seed (or the whole
JSON document).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from rapport_protocol import SigningKey
from rapport_protocol.canonical import b64url, b64url_decode

KEY_FILE_TYPE = "rapport-ed25519-key"
ENV_PRIVATE_KEY = "RAPPORT_PRIVATE_KEY"


class KeyFileError(Exception):
    """A key file or key value that cannot be used (missing, malformed, or exposed)."""


def generate_key() -> SigningKey:
    """A new Ed25519 key from the operating system's CSPRNG."""
    return SigningKey.generate()


def _document(key: SigningKey) -> dict[str, str]:
    return {"type": KEY_FILE_TYPE, "did": key.did, "seed": b64url(key.seed)}


def save_key(key: SigningKey, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``key`` to ``path`` atomically with mode 0600 (parent made 0700 if created).

    Refuses to replace an existing file unless ``overwrite``.
    """
    target = Path(path).expanduser()
    if target.exists() and not overwrite:
        raise KeyFileError(f"{target} exists; refusing to overwrite a key")
    if not target.parent.exists():
        target.parent.mkdir(mode=0o700, parents=True)
    data = json.dumps(_document(key)).encode()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    return target


def _parse(value: Any, source: str) -> SigningKey:
    if isinstance(value, dict):
        if value.get("type") != KEY_FILE_TYPE or not isinstance(value.get("seed"), str):
            raise KeyFileError(f"{source}: not a {KEY_FILE_TYPE} document")
        seed_text = value["seed"]
    elif isinstance(value, str):
        seed_text = value.strip()
    else:
        raise KeyFileError(f"{source}: not a key")
    try:
        seed = b64url_decode(seed_text)
        key = SigningKey.from_seed(seed)
    except ValueError:
        raise KeyFileError(f"{source}: the seed is not 32 bytes of base64url") from None
    if isinstance(value, dict) and value.get("did") not in (None, key.did):
        raise KeyFileError(f"{source}: the did does not match the seed")
    return key


def load_key(path: str | os.PathLike[str]) -> SigningKey:
    """Read a key file. Refuses a file that its group or others can read or write."""
    target = Path(path).expanduser()
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        raise KeyFileError(f"{target}: no such key file") from None
    if not stat.S_ISREG(mode):
        raise KeyFileError(f"{target}: not a regular file")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{target}: permissions {stat.filemode(mode)} are too open; "
            f"the key must be readable by its owner only (chmod 600 {target})"
        )
    try:
        document = json.loads(target.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise KeyFileError(f"{target}: not JSON") from None
    return _parse(document, str(target))


def key_from_env(environ: dict[str, str] | None = None) -> SigningKey | None:
    """The key in ``RAPPORT_PRIVATE_KEY`` (a base64url seed or a key-file JSON), if set."""
    value = (environ if environ is not None else dict(os.environ)).get(ENV_PRIVATE_KEY)
    if not value:
        return None
    text = value.strip()
    if text.startswith("{"):
        try:
            return _parse(json.loads(text), ENV_PRIVATE_KEY)
        except ValueError:
            raise KeyFileError(f"{ENV_PRIVATE_KEY}: not JSON") from None
    return _parse(text, ENV_PRIVATE_KEY)


def export_seed(key: SigningKey) -> str:
    """The base64url seed of ``key``, for ``RAPPORT_PRIVATE_KEY``. Handle with care."""
    return b64url(key.seed)
