"""The generated spec artefacts are what the code renders today."""

from __future__ import annotations

import re

from rapport_protocol import errors
from rapport_protocol.favours import FAVOUR_TRANSITIONS
from rapport_protocol.state import CONNECTION_TRANSITIONS
from rapport_protocol.types import MessageType

from .conftest import ROOT, SPEC, generator


def test_every_generated_file_is_fresh() -> None:
    stale = generator("generate_spec").stale(ROOT)
    assert stale == [], f"regenerate with `make spec`: {stale}"


def test_generation_is_deterministic() -> None:
    gen = generator("generate_spec")
    assert gen.render_all(ROOT) == gen.render_all(ROOT)


def _region(name: str) -> str:
    text = (SPEC / "protocol.md").read_text(encoding="utf-8")
    match = re.search(
        rf"<!-- BEGIN GENERATED: {name} -->\n(.*?)<!-- END GENERATED -->", text, re.DOTALL
    )
    assert match is not None, f"protocol.md lacks the {name} region"
    return match.group(1)


def test_error_table_lists_every_code() -> None:
    table = _region("errors")
    rows = re.findall(r"^\| `([a-z_0-9]+)` \|", table, re.MULTILINE)
    assert sorted(rows) == sorted(errors.ERRORS_BY_CODE)


def test_connection_table_has_every_transition() -> None:
    table = _region("connection")
    for status, row in CONNECTION_TRANSITIONS.items():
        for mtype, new in row.items():
            assert f"| `{status}` | `{mtype.value}` | `{new}` |" in table


def test_favour_table_has_every_transition() -> None:
    table = _region("favour")
    for (status, mtype), (actor, new) in FAVOUR_TRANSITIONS.items():
        assert f"| `{status}` | `{mtype.value}` | {actor} | `{new}` |" in table


def test_type_table_and_schemas_cover_every_message_type() -> None:
    table = _region("types")
    for mtype in MessageType:
        assert f"| `{mtype.value}` |" in table
        assert (SPEC / "schemas" / f"{mtype.value}.json").is_file()
    assert len(list((SPEC / "schemas").glob("*.json"))) == len(MessageType)


def test_stale_region_is_detected() -> None:
    doc_gen = generator("gen_spec_doc")
    text = (SPEC / "protocol.md").read_text(encoding="utf-8")
    broken = text.replace("| `grant_conflict` |", "| `grant_clash` |", 1)
    assert broken != text
    assert doc_gen.render_regions(broken) == text
