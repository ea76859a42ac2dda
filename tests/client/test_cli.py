"""The ``rapport`` party commands and ``rapport demo``, against a live server."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rapport_cli import demo as demo_module
from rapport_cli.main import app
from typer.testing import CliRunner

runner = CliRunner()


def rapport(server: str, key: Path | None, *args: str, code: int = 0) -> str:
    argv = [*args, "--server", server] + (["--key", str(key)] if key else [])
    result = runner.invoke(app, argv, catch_exceptions=False)
    assert result.exit_code == code, (argv, result.exit_code, result.stdout, result.stderr)
    return result.stdout if code == 0 else result.stderr


def as_json(server: str, key: Path, *args: str) -> object:
    return json.loads(rapport(server, key, *args, "--json"))


def test_cli_story(cli_server: str, tmp_path: Path) -> None:
    biz, ann = tmp_path / "biz.json", tmp_path / "ann.json"
    assert "Registered business" in rapport(
        cli_server, biz, "register", "business", "Roastery", "--new-key"
    )
    assert (biz.stat().st_mode & 0o777) == 0o600
    rapport(cli_server, ann, "register", "person", "Ann", "--new-key")
    me = as_json(cli_server, ann, "whoami")
    assert me["kind"] == "person"  # type: ignore[index]

    invitation = as_json(
        cli_server, biz, "invite", "--label", "Roastery", "--offer", "favour:callback",
        "--request", "message:order_updates:1/P1D", "--request", "message:marketing",
    )  # fmt: skip
    link = invitation["url"]  # type: ignore[index]
    text = rapport(cli_server, ann, "accept", link, "--grant-requested")
    assert "Connected:" in text and "order_updates" in text and "\x1b[" not in text
    rows = as_json(cli_server, biz, "connections")
    assert isinstance(rows, list) and len(rows) == 1
    cid = rows[0]["cid"]
    assert "cid" in rapport(cli_server, biz, "connections")  # the table

    assert "Delivered" in rapport(cli_server, biz, "send", cid, "order_updates", "shipped")
    err = rapport(cli_server, biz, "send", cid, "order_updates", "again", code=3)
    assert "rate_exceeded" in err and "retry after" in err
    err = rapport(cli_server, biz, "send", cid, "surveys", "how are we doing?", code=3)
    assert "grant_missing" in err and "HTTP 403" in err
    inbox = as_json(cli_server, ann, "inbox", "--unacked", "--ack")
    assert [m["content"] for m in inbox] == ["shipped"]  # type: ignore[index,union-attr]
    assert as_json(cli_server, ann, "inbox", "--unacked") == []

    rapport(cli_server, ann, "mute", cid, "--for", "3600", "--mode", "reject")
    err = rapport(cli_server, biz, "send", cid, "marketing", "sale", code=3)
    assert "muted" in err and "muted until" in err
    assert "Unmuted" in rapport(cli_server, ann, "unmute", cid)

    favour = as_json(cli_server, ann, "favour", "request", cid, "callback", "Call me please")
    fid = favour["id"]  # type: ignore[index]
    rapport(cli_server, biz, "favour", "accept", cid, fid)
    rapport(cli_server, biz, "favour", "fulfil", cid, fid, "--note", "done")
    done = as_json(cli_server, ann, "favour", "acknowledge", cid, fid)
    assert done["status"] == "acknowledged"  # type: ignore[index]
    ledger = as_json(cli_server, biz, "favour", "ledger", cid)
    assert ledger["me"]["given"] == 1  # type: ignore[index]
    rapport(cli_server, biz, "favour", "accept", cid, fid, code=3)  # no longer requested

    grants = as_json(cli_server, ann, "grant", "list", cid)
    marketing = next(g for g in grants["granted_by_me"] if g["topic"] == "marketing")  # type: ignore[index]
    rapport(cli_server, ann, "grant", "revoke", cid, marketing["id"])
    rapport(cli_server, biz, "send", cid, "marketing", "sale", code=3)
    issued = as_json(cli_server, biz, "grant", "issue", cid, "message:support")
    assert issued["direction"] == "granted_by_me"  # type: ignore[index]

    rapport(cli_server, ann, "sever", cid, "--yes", "--block-reinvite")
    err = rapport(cli_server, biz, "send", cid, "order_updates", "hello?", code=3)
    assert "connection_severed" in err
    out = rapport(cli_server, ann, "log", cid, "--verify")
    assert "Verified offline" in out and "status severed" in out
    verdict = as_json(cli_server, biz, "log", cid, "--verify")
    assert verdict["verification"]["valid"] is True  # type: ignore[index]
    export_file = tmp_path / "export.json"
    rapport(cli_server, ann, "export", "--out", str(export_file))
    assert json.loads(export_file.read_text())["party"]["display_name"] == "Ann"


def test_cli_refuses_a_key_file_others_can_read(cli_server: str, tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    rapport(cli_server, key, "register", "person", "Bo", "--new-key")
    os.chmod(key, 0o644)
    err = rapport(cli_server, key, "whoami", code=2)
    assert "too open" in err


def test_cli_missing_key_file_is_explained(cli_server: str, tmp_path: Path) -> None:
    err = rapport(cli_server, tmp_path / "none.json", "whoami", code=2)
    assert "no key file" in err and "--new-key" in err


def test_cli_unreachable_server_exits_4(tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    from rapport_client import keys

    keys.save_key(keys.generate_key(), key)
    err = rapport("http://127.0.0.1:9", key, "whoami", code=4)
    assert "could not reach" in err


def test_cli_bad_grant_syntax_is_a_usage_error(cli_server: str, tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    rapport(cli_server, key, "register", "business", "Co", "--new-key")
    result = runner.invoke(
        app, ["invite", "--request", "message", "--server", cli_server, "--key", str(key)]
    )
    assert result.exit_code == 2 and "SCOPE:TOPIC" in result.output


def test_demo_against_a_running_server(cli_server: str) -> None:
    result = runner.invoke(app, ["demo", "--server", cli_server], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for expected in ("grant_missing", "rate_exceeded", "retry after", "held=True", "muted",
                     "grant_conflict", "connection_severed", "reinvite_blocked",
                     "verified 21 signed objects", "Every step behaved"):  # fmt: skip
        assert expected in result.stdout, expected


def test_demo_exits_non_zero_when_a_step_misbehaves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_module, "play", lambda base, out: ["step 6: rate cap not enforced"])
    result = runner.invoke(app, ["demo", "--server", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "rate cap not enforced" in result.stderr


def test_story_records_an_accepted_action_that_should_have_been_refused() -> None:
    from rapport_client import errors
    from rich.console import Console

    story = demo_module.Story(Console(file=open(os.devnull, "w")))  # noqa: SIM115
    story.refused("Ann", "send", lambda: None, errors.GrantMissing)
    story.refused(
        "Ann",
        "send",
        lambda: (_ for _ in ()).throw(errors.Muted("x", code="muted")),
        errors.GrantMissing,
    )
    assert (
        len(story.failures) == 2
        and "accepted" in story.failures[0]
        and "got muted" in story.failures[1]
    )


@pytest.fixture
async def postgres_url(database_url: str) -> AsyncIterator[str]:
    """This leg's PostgreSQL database, or on the SQLite leg a fresh one for this test."""
    from tests.conftest import DEFAULT_PG, _pg_admin, backend

    if backend() == "postgres":
        yield database_url
        return
    from sqlalchemy.engine import make_url

    admin = os.environ.get("RAPPORT_TEST_PG_URL", DEFAULT_PG)
    name = "rapport_demo_" + secrets.token_hex(6)
    try:
        await _pg_admin(admin, f'CREATE DATABASE "{name}"')
    except OSError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        await _pg_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_demo(*extra: str) -> str:
    args = [sys.executable, "-m", "rapport_cli.main", "demo", *extra]
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=180, env={**os.environ, "NO_COLOR": "1"}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Every step behaved as the protocol says." in done.stdout
    return done.stdout


def test_rapport_demo_on_its_own_temporary_sqlite() -> None:
    """`rapport demo` as a user runs it: its own server on a temporary SQLite file."""
    assert "in-process server (sqlite)" in run_demo()


def test_rapport_demo_on_postgresql(postgres_url: str) -> None:
    """`rapport demo --database-url postgresql+asyncpg://…` (on both test legs)."""
    assert "in-process server (postgresql)" in run_demo("--database-url", postgres_url)


def test_log_verify_exits_1_when_the_log_does_not_verify(
    cli_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    biz, ann = tmp_path / "b.json", tmp_path / "a.json"
    rapport(cli_server, biz, "register", "business", "B", "--new-key")
    rapport(cli_server, ann, "register", "person", "A", "--new-key")
    link = as_json(cli_server, biz, "invite")["url"]  # type: ignore[index]
    cid = as_json(cli_server, ann, "accept", link)["cid"]  # type: ignore[index]
    from rapport_client import models
    from rapport_client._resources import SyncPager

    real = SyncPager.to_list

    def tampered(self: SyncPager) -> list:  # type: ignore[type-arg]
        items = real(self)
        if items and isinstance(items[0], models.LogItem):
            first = items[0].object
            items[0] = items[0].model_copy(
                update={"object": {**first, "created_time": first["created_time"] + 1}}
            )
        return items

    monkeypatch.setattr(SyncPager, "to_list", tampered)
    err = rapport(cli_server, ann, "log", cid, "--verify", code=1)
    assert "NOT VALID at entry 0: id_mismatch" in err
