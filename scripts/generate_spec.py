"""Regenerate (or check) every generated spec artefact.

- spec/protocol.md: the regions between ``<!-- BEGIN GENERATED: name -->`` markers
- spec/schemas/*.json: JSON Schema 2020-12 per message type
- spec/vectors/*.json: deterministic protocol vectors

``python scripts/generate_spec.py`` writes; ``--check`` exits 1 listing stale files. The
same :func:`render_all` backs the freshness test in tests/spec.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen_spec_doc
import gen_spec_schemas
import gen_spec_vectors

ROOT = Path(__file__).resolve().parents[1]
SPEC_DOC = "spec/protocol.md"


def render_all(root: Path = ROOT) -> dict[str, bytes]:
    """Every generated file's expected content, by path relative to ``root``."""
    out: dict[str, bytes] = {}
    doc = (root / SPEC_DOC).read_text(encoding="utf-8")
    out[SPEC_DOC] = gen_spec_doc.render_regions(doc).encode("utf-8")
    out.update(gen_spec_schemas.render())
    out.update(gen_spec_vectors.render())
    return out


def stale(root: Path = ROOT) -> list[str]:
    """Generated files whose committed content differs from what the code renders."""
    found = []
    for rel, content in render_all(root).items():
        path = root / rel
        if not path.exists() or path.read_bytes() != content:
            found.append(rel)
    return found


def main(argv: list[str]) -> int:
    if "--check" in argv:
        bad = stale()
        for rel in bad:
            print(f"stale: {rel}")
        return 1 if bad else 0
    for rel, content in render_all().items():
        path = ROOT / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_bytes() != content:
            path.write_bytes(content)
            print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
