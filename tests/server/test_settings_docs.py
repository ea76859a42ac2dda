"""The README's configuration table names every setting the server reads, with its default."""

from __future__ import annotations

import re
from pathlib import Path

from rapport_server.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `(RAPPORT_[A-Z_]+)` \| ([^|]+) \|", re.MULTILINE)


def _table() -> dict[str, str]:
    return {name: default.strip() for name, default in ROW.findall(README.read_text())}


def test_every_setting_has_a_row_in_the_readme_and_every_row_a_setting() -> None:
    table = _table()
    settings = {f"RAPPORT_{name.upper()}" for name in Settings.model_fields}
    assert sorted(settings - table.keys()) == [], "settings the README does not document"
    assert sorted(table.keys() - settings) == [], "README rows no setting reads"


def test_the_readme_gives_each_plain_default_as_the_code_has_it() -> None:
    # Settings whose default is a value (not "generated" or per backend) must match it.
    table = _table()
    for name, field in Settings.model_fields.items():
        default = field.default
        if default is None:
            continue
        shown = table.get(f"RAPPORT_{name.upper()}", "")
        if not shown.startswith("`"):
            continue  # described in words (or missing: the test above says so)
        text = shown.strip("`")
        if isinstance(default, bool):
            assert text == str(default).lower(), name
        elif isinstance(default, int | float):
            assert float(text) == float(default), name
        else:
            assert text == str(default), name
