"""Key files for the CLI (JSON, mode 0600). The SDK reads the same format."""

from __future__ import annotations

import json
import os
from pathlib import Path

from rapport_protocol import SigningKey
from rapport_protocol.canonical import b64url

KEY_FILE_TYPE = "rapport-ed25519-key"


def save_key(key: SigningKey, path: Path) -> None:
    """Write ``key`` to ``path`` atomically, readable by the owner only."""
    data = json.dumps({"type": KEY_FILE_TYPE, "did": key.did, "seed": b64url(key.seed)}).encode()
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
