"""Shared loaders for the spec tests: the committed vectors and the spec generators."""

from __future__ import annotations

import importlib.util
import json
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "spec"
VECTORS = SPEC / "vectors"


@cache
def generator(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` (the spec generators are scripts, not a package)."""
    scripts = str(ROOT / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@cache
def vectors(name: str) -> Any:
    """A committed vector file, parsed."""
    return json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))
