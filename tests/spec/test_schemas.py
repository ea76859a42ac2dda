"""The JSON Schemas are valid 2020-12 schemas and accept every valid vector object."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from rapport_protocol.types import TYPE_PREFIX, MessageType

from .conftest import SPEC, vectors


@cache
def validator(type_uri: str) -> Draft202012Validator:
    name = type_uri.removeprefix(TYPE_PREFIX)
    schema = json.loads((SPEC / "schemas" / f"{name}.json").read_text(encoding="utf-8"))
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def valid_objects() -> list[tuple[str, dict[str, Any]]]:
    """Every object the vectors say is valid: story steps, decide setups and subjects."""
    found: list[tuple[str, dict[str, Any]]] = []
    for story in ("story", "story-decline"):
        for step in vectors(story)["steps"]:
            found.append((f"{story}/{step['name']}", step["object"]))
    for case in vectors("decide")["cases"]:
        for i, entry in enumerate(case["setup"]):
            found.append((f"decide/{case['name']}/setup{i}", entry["object"]))
        found.append((f"decide/{case['name']}", case["object"]))
    return found


@pytest.mark.parametrize("mtype", list(MessageType), ids=lambda t: t.value)
def test_schema_is_a_valid_2020_12_schema(mtype: MessageType) -> None:
    schema = validator(mtype.uri).schema
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["type"] == {"const": mtype.uri}


@pytest.mark.parametrize(
    ("where", "obj"), valid_objects(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_valid_vector_object_matches_its_schema(where: str, obj: dict[str, Any]) -> None:
    errors = sorted(validator(obj["type"]).iter_errors(obj), key=str)
    assert errors == [], f"{where}: {errors[0].message if errors else ''}"


def test_every_type_has_a_valid_vector_object() -> None:
    assert {obj["type"] for _, obj in valid_objects()} == {t.uri for t in MessageType}


# Shape errors a schema can express: the schema must refuse them as the protocol does.
SHAPE_CASES = (
    "unknown-member",
    "null-member",
    "invalid-body",
    "seq-on-unchained",
    "null-in-body",
    "null-in-nested-body",
    "quiet-hours-non-ascii-digit",
)


@pytest.mark.parametrize("name", SHAPE_CASES)
def test_schema_refuses_shape_errors(name: str) -> None:
    case = next(c for c in vectors("invalid")["cases"] if c["name"] == name)
    obj = json.loads(case["text"])
    assert not validator(obj["type"]).is_valid(obj)


def test_schema_refuses_a_chained_object_without_prev() -> None:
    step = next(s for s in vectors("story")["steps"] if s["name"] == "grant-amend")
    obj = {k: v for k, v in step["object"].items() if k != "prev"}
    assert not validator(obj["type"]).is_valid(obj)
