"""How the CLI talks back: rich tables for people, ``--json`` for scripts, clear errors.

Colours are used only on a terminal (and never with ``NO_COLOR``). Errors go to stderr as
one line with the stable code, and the exit status says what kind of failure it was.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel
from rapport_client import errors
from rapport_client.keys import KeyFileError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

T = TypeVar("T")

EXIT_REFUSED = 3
"""The server (or the protocol) said no: a 4xx problem."""
EXIT_UNREACHABLE = 4
"""No answer from the server."""
EXIT_SERVER = 5
"""The server failed (5xx)."""
EXIT_LOCAL = 2
"""Bad local input: key file, arguments."""


def console(stderr: bool = False, *, markup: bool = False) -> Console:
    """A console that colours only real terminals. Markup is off by default: what is
    printed is data (labels, messages) and must appear as it is."""
    stream = sys.stderr if stderr else sys.stdout
    plain = not stream.isatty() or "NO_COLOR" in os.environ
    return Console(
        file=stream,
        no_color=plain,
        color_system=None if plain else "auto",
        soft_wrap=True,
        emoji=False,
        markup=markup,
        highlight=False,
    )


def to_jsonable(value: Any) -> Any:
    """Models and lists of models as plain JSON values."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    return value


def emit_json(value: Any) -> None:
    """Print ``value`` as JSON on stdout."""
    typer.echo(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False))


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a table (or a note that there is nothing to show)."""
    out = console()
    if not rows:
        out.print(f"{title}: none")
        return
    grid = Table(title=title, title_justify="left")
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*(Text("" if v is None else str(v)) for v in row))
    out.print(grid)


def fail(message: str, code: int) -> NoReturn:
    """Print ``message`` on stderr and exit with ``code``."""
    console(stderr=True, markup=True).print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def exit_code_for(exc: errors.RapportError) -> int:
    """The exit status for an SDK error."""
    if isinstance(exc, errors.APIConnectionError):
        return EXIT_UNREACHABLE
    if exc.status is not None and exc.status >= 500:
        return EXIT_SERVER
    if exc.status is None:
        return EXIT_LOCAL
    return EXIT_REFUSED


def describe(exc: errors.RapportError) -> str:
    """One line explaining an SDK error, with what to do when it is obvious."""
    text = str(exc)
    if isinstance(exc, errors.TooManyRequests) and exc.retry_after is not None:
        text += f"; retry after {exc.retry_after} s"
    if isinstance(exc, errors.Muted):
        text += "; muted indefinitely" if exc.until is None else f"; muted until {exc.until}"
    return text


@contextmanager
def reporting() -> Iterator[None]:
    """Turn SDK and key-file errors into one stderr line and a meaningful exit status."""
    try:
        yield
    except errors.RapportError as exc:
        fail(describe(exc), exit_code_for(exc))
    except KeyFileError as exc:
        fail(str(exc), EXIT_LOCAL)


def run(action: Callable[[], T]) -> T:
    """``action()`` under :func:`reporting`."""
    with reporting():
        return action()
    raise AssertionError("unreachable")  # pragma: no cover
