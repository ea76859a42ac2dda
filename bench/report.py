"""The one results table: each figure next to the reference measured in the same run."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Row:
    """One line of the table. ``ratio`` is figure / reference (``None``: not applicable)."""

    name: str
    backend: str
    figure: str
    reference: str
    ratio: float | None = None
    goal: str = ""
    note: str = ""

    @property
    def verdict(self) -> str:
        """``met`` / ``MISSED`` for goals of the form ``≥ x`` or ``≤ x``; else empty."""
        if self.ratio is None or not self.goal or math.isnan(self.ratio):
            return ""
        op, _, value = self.goal.partition(" ")
        try:
            bound = float(value.rstrip("×"))
        except ValueError:
            return ""
        if op == "≥":
            return "met" if self.ratio >= bound else "MISSED"
        if op == "≤":
            return "met" if self.ratio <= bound else "MISSED"
        return ""


def pending(name: str, backend: str, why: str) -> Row:
    """A row for a figure this run could not measure."""
    return Row(name, backend, "pending", "—", None, "", why)


def notes(*parts: str) -> str:
    """A row's notes: the non-empty ``parts``, joined with "; "."""
    return "; ".join(part for part in parts if part)


def rate(value: float, unit: str = "/s") -> str:
    """A rate with thousands separators."""
    return f"{value:,.0f}{unit}"


def render(rows: list[Row]) -> str:
    """The table as GitHub Markdown (also readable in a terminal)."""
    header = ("benchmark", "db", "figure", "reference (same run)", "ratio", "goal", "", "notes")
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for r in rows:
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}×"
        cells = (r.name, r.backend, r.figure, r.reference, ratio, r.goal, r.verdict, r.note)
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


START, END = "<!-- results:start -->", "<!-- results:end -->"


def record(path: Path, header: str, table: str) -> None:
    """Replace the results block of ``path`` (BENCHMARKS.md) with this run's table."""
    text = path.read_text(encoding="utf-8")
    before, found, rest = text.partition(START)
    _, found_end, after = rest.partition(END)
    if not found or not found_end:
        raise ValueError(f"{path} has no {START} … {END} block")
    path.write_text(f"{before}{START}\n{header}\n\n{table}\n{END}{after}", encoding="utf-8")
