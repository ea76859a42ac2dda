"""Party commands: act as a business or person from a key file, through the SDK.

Every command takes ``--key`` (default ``~/.config/rapport/key.json`` or
``$RAPPORT_KEY_FILE``), ``--server`` (``$RAPPORT_SERVER_URL``) and ``--json``. Objects are
signed locally; nothing is kept between runs but the key (chains are recovered from the
connection logs).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import typer
from rapport_client import Client, GrantSpec, keys, models, verify_log

from .output import EXIT_LOCAL, console, emit_json, fail, reporting, table

DEFAULT_SERVER = "http://127.0.0.1:8000"
DataInstruction = Literal["delete", "retain_legal", "export_then_delete"]

KeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--key",
        envvar="RAPPORT_KEY_FILE",
        help="Key file (mode 0600). Default: ~/.config/rapport/key.json.",
        show_default=False,
    ),
]
ServerOpt = Annotated[
    str, typer.Option("--server", envvar="RAPPORT_SERVER_URL", help="Server base URL.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
Cid = Annotated[str, typer.Argument(help="Connection id (see `rapport connections`).")]


def default_key_path() -> Path:
    """``~/.config/rapport/key.json``."""
    return Path("~/.config/rapport/key.json").expanduser()


def client(key: Path | None, server: str) -> Client:
    """An SDK client for the key file (errors are reported by the caller)."""
    path = key or default_key_path()
    if not path.expanduser().exists():
        fail(
            f"no key file at {path}; create one with `rapport register --new-key ...` "
            "or `rapport keygen -o PATH`",
            EXIT_LOCAL,
        )
    return Client(server, key_file=path)


def when(ts: int | None) -> str:
    """UTC seconds as a short ISO time."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def parse_grant(text: str) -> GrantSpec:
    """``SCOPE:TOPIC[:COUNT/PERIOD]`` (e.g. ``message:order_updates:3/P1D``) or JSON."""
    try:
        if text.lstrip().startswith("{"):
            return GrantSpec.model_validate(json.loads(text))
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise ValueError("expected SCOPE:TOPIC[:COUNT/PERIOD]")
        spec: dict[str, Any] = {"scope": parts[0], "topic": parts[1]}
        if len(parts) == 3:
            count, _, period = parts[2].partition("/")
            spec["rate"] = {"count": int(count), "period": period}
        return GrantSpec.model_validate(spec)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: {exc}") from None


def describe_grant(grant: GrantSpec | dict[str, Any] | models.Grant) -> str:
    """``message:order_updates (≤ 3 per P1D)``."""
    data = grant.model_dump() if isinstance(grant, GrantSpec | models.Grant) else grant
    rate = data.get("rate")
    text = f"{data['scope']}:{data['topic']}"
    if rate:
        text += f" (≤ {rate['count']} per {rate['period']})"
    return text


def token_of(link: str) -> str:
    """The token of an invitation link (or the token itself)."""
    return link.rstrip("/").rsplit("/", 1)[-1]


def register(
    kind: Annotated[str, typer.Argument(help="business or person")],
    name: Annotated[str, typer.Argument(help="Display name.")],
    new_key: Annotated[
        bool, typer.Option("--new-key", help="Create the key file first if it is missing.")
    ] = False,
    key: KeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Register the key as a business or a person."""
    if kind not in ("business", "person"):
        raise typer.BadParameter("kind is business or person")
    path = key or default_key_path()
    with reporting():
        if new_key and not path.expanduser().exists():
            keys.save_key(keys.generate_key(), path)
        with client(path, server) as api:
            party = api.parties.register("business" if kind == "business" else "person", name)
    if as_json:
        emit_json(party)
    else:
        console().print(f"Registered {party.kind} {party.display_name!r}: {party.did}")


def whoami(
    key: KeyOpt = None, server: ServerOpt = DEFAULT_SERVER, as_json: JsonOpt = False
) -> None:
    """Show the party of the key."""
    with reporting(), client(key, server) as api:
        party = api.parties.me()
    if as_json:
        emit_json(party)
    else:
        console().print(f"{party.display_name} ({party.kind}) {party.did}")


def invite(
    label: Annotated[str, typer.Option(help="What the invitation is for.")] = "Rapport",
    offer: Annotated[
        list[str] | None,
        typer.Option("--offer", help="Grant you give the invitee, SCOPE:TOPIC[:N/PERIOD]."),
    ] = None,
    request: Annotated[
        list[str] | None,
        typer.Option("--request", help="Grant you ask for, SCOPE:TOPIC[:N/PERIOD]."),
    ] = None,
    multi_use: Annotated[bool, typer.Option("--multi-use", help="Many may accept it.")] = False,
    max_uses: Annotated[int | None, typer.Option(help="Limit of a multi-use invitation.")] = None,
    expires_in: Annotated[int | None, typer.Option(help="Seconds until it expires.")] = None,
    to: Annotated[list[str] | None, typer.Option("--to", help="Only for this did:key.")] = None,
    key: KeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Create an invitation and print its link."""
    offered = [parse_grant(g) for g in offer or []]
    requested = [parse_grant(g) for g in request or []]
    with reporting(), client(key, server) as api:
        invitation = api.invitations.create(
            label=label,
            offered=offered,
            requested=requested,
            multi_use=multi_use,
            max_uses=max_uses,
            expires_in=expires_in,
            to=to,
        )
    if as_json:
        emit_json(invitation)
        return
    out = console()
    out.print(f"Invitation {invitation.id[:16]}… ({'multi-use' if multi_use else 'single-use'})")
    out.print(f"  link:  {invitation.url}")
    out.print(f"  token: {invitation.token}")
    for spec in offered:
        out.print(f"  offers   {describe_grant(spec)}")
    for spec in requested:
        out.print(f"  requests {describe_grant(spec)}")


def accept(
    link: Annotated[str, typer.Argument(help="Invitation link or token.")],
    grant: Annotated[
        list[str] | None,
        typer.Option("--grant", help="Grant you give the inviter, SCOPE:TOPIC[:N/PERIOD]."),
    ] = None,
    grant_requested: Annotated[
        bool, typer.Option("--grant-requested", help="Grant exactly what the inviter asks.")
    ] = False,
    label: Annotated[str | None, typer.Option(help="Your label for the connection.")] = None,
    key: KeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Accept an invitation, granting what you choose."""
    grants: list[Any] = [parse_grant(g) for g in grant or []]
    with reporting(), client(key, server) as api:
        invitation = api.invitations.lookup(token_of(link))
        if grant_requested:
            grants.extend(invitation.requested)
        connection = api.invitations.accept(invitation, grants=grants, label=label)
    if as_json:
        emit_json(connection)
        return
    out = console()
    out.print(f"Connected: {connection.cid} with {invitation.label!r}")
    for g in connection.grants:
        arrow = "they may send you" if g.direction == "granted_by_me" else "you may send them"
        out.print(f"  {arrow}: {describe_grant(g)}")


def decline(
    link: Annotated[str, typer.Argument(help="Invitation link or token.")],
    reason: Annotated[str | None, typer.Option(help="Why (shown to the inviter).")] = None,
    key: KeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Decline an invitation."""
    with reporting(), client(key, server) as api:
        invitation = api.invitations.lookup(token_of(link))
        result = api.invitations.decline(invitation, reason=reason)
    if as_json:
        emit_json(result)
    else:
        console().print(f"Declined {invitation.label!r}")


def connections(
    status: Annotated[str | None, typer.Option(help="active, declined or severed.")] = None,
    key: KeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """List your connections."""
    if status not in (None, "active", "declined", "severed"):
        raise typer.BadParameter("status is active, declined or severed")
    with reporting(), client(key, server) as api:
        rows = api.connections.list(status=status).to_list()  # type: ignore[arg-type]
    if as_json:
        emit_json(rows)
        return
    table(
        "Connections",
        ["cid", "status", "role", "counterparty", "they may send", "you may send", "muted"],
        [
            (
                c.cid,
                c.status,
                c.my_role,
                c.counterparty_kind,
                ", ".join(describe_grant(g) for g in c.grants if g.direction == "granted_by_me"),
                ", ".join(describe_grant(g) for g in c.grants if g.direction == "granted_to_me"),
                "by me" if c.muted_by_me else ("by them" if c.muted_by_them else ""),
            )
            for c in rows
        ],
    )


grant_app = typer.Typer(help="Grants: what the other party may send you.", no_args_is_help=True)


@grant_app.command("list")
def grant_list(
    cid: Cid,
    history: Annotated[bool, typer.Option(help="Include ended grants.")] = False,
    key: KeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Grants both ways in a connection."""
    with reporting(), client(key, server) as api:
        grants = api.grants.list(cid, history=history)
    if as_json:
        emit_json(grants)
        return
    table(
        "Grants",
        ["id", "direction", "grant", "status", "issued"],
        [
            (g.id, g.direction.replace("_", " "), describe_grant(g), g.status, when(g.issued_time))
            for g in grants.granted_by_me + grants.granted_to_me
        ],
    )


@grant_app.command("issue")
def grant_issue(
    cid: Cid,
    spec: Annotated[str, typer.Argument(help="SCOPE:TOPIC[:N/PERIOD] or JSON.")],
    key: KeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Allow the other party to send you SCOPE:TOPIC."""
    grant = parse_grant(spec)
    with reporting(), client(key, server) as api:
        result = api.grants.issue(cid, grant)
    _show_grant(result, "Granted", as_json)


@grant_app.command("amend")
def grant_amend(
    cid: Cid,
    grant_id: Annotated[str, typer.Argument(help="The grant in force.")],
    spec: Annotated[str, typer.Argument(help="The new SCOPE:TOPIC[:N/PERIOD] or JSON.")],
    key: KeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Replace a grant (fails with grant_conflict if it changed meanwhile)."""
    grant = parse_grant(spec)
    with reporting(), client(key, server) as api:
        result = api.grants.amend(cid, grant_id, grant)
    _show_grant(result, "Amended", as_json)


@grant_app.command("revoke")
def grant_revoke(
    cid: Cid,
    grant_id: Annotated[str, typer.Argument(help="The grant to withdraw.")],
    key: KeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Withdraw a grant."""
    with reporting(), client(key, server) as api:
        result = api.grants.revoke(cid, grant_id)
    _show_grant(result, "Revoked", as_json)


def _show_grant(grant: models.Grant, verb: str, as_json: bool) -> None:
    if as_json:
        emit_json(grant)
    else:
        console().print(f"{verb} {describe_grant(grant)} [{grant.status}] id {grant.id}")


def mute(
    cid: Cid,
    for_seconds: Annotated[
        int | None, typer.Option("--for", help="Mute for this many seconds.")
    ] = None,
    until: Annotated[int | None, typer.Option(help="Mute until this UTC time (seconds).")] = None,
    exempt: Annotated[
        list[str] | None, typer.Option("--exempt", help="Topic still let through.")
    ] = None,
    mode: Annotated[str, typer.Option(help="hold (deliver later) or reject.")] = "hold",
    key: KeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Mute the other party (until lifted, for a while, or until a time)."""
    if mode not in ("hold", "reject"):
        raise typer.BadParameter("mode is hold or reject")
    with reporting(), client(key, server) as api:
        if for_seconds is not None:
            until = api.clock() + for_seconds
        result = api.mutes.set(
            cid,
            until=until,
            exempt_topics=exempt or [],
            mode="hold" if mode == "hold" else "reject",
        )
    if as_json:
        emit_json(result)
    else:
        end = when(until) if until else "until lifted"
        console().print(f"Muted {cid} ({mode}) {end}; exempt: {', '.join(exempt or []) or '-'}")


def unmute(
    cid: Cid, key: KeyOpt = None, server: ServerOpt = DEFAULT_SERVER, as_json: JsonOpt = False
) -> None:
    """Lift your mute; held messages are delivered."""
    with reporting(), client(key, server) as api:
        result = api.mutes.clear(cid)
    if as_json:
        emit_json(result)
    else:
        console().print(f"Unmuted {cid}")


def sever(
    cid: Cid,
    data: Annotated[
        str, typer.Option(help="delete, retain_legal or export_then_delete.")
    ] = "delete",
    block_reinvite: Annotated[
        bool, typer.Option("--block-reinvite", help="They may not invite you again.")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why (kept in the log).")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    key: KeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Cut the other party off for good."""
    if data not in ("delete", "retain_legal", "export_then_delete"):
        raise typer.BadParameter("data is delete, retain_legal or export_then_delete")
    if not yes and not typer.confirm(f"Sever {cid}? This cannot be undone", default=False):
        raise typer.Exit(1)
    with reporting(), client(key, server) as api:
        result = api.connections.sever(
            cid,
            data=cast(DataInstruction, data),
            block_reinvite=block_reinvite,
            reason=reason,
        )
    if as_json:
        emit_json(result)
    else:
        console().print(f"Severed {cid} (data: {data}, re-invite blocked: {block_reinvite})")


favour_app = typer.Typer(help="Favours: ask, answer, close; the ledger.", no_args_is_help=True)


@favour_app.command("request")
def favour_request(
    cid: Cid,
    kind: Annotated[str, typer.Argument(help="The favour kind (a topic the other granted).")],
    description: Annotated[str, typer.Argument(help="What you ask.")],
    return_of: Annotated[
        str | None, typer.Option(help="Id of their favour this one returns.")
    ] = None,
    key: KeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Ask the other party a favour."""
    with reporting(), client(key, server) as api:
        favour = api.favours.request(cid, kind=kind, description=description, return_of=return_of)
    _show_favour(favour, as_json)


def _favour_step(step: str) -> Any:
    def command(
        cid: Cid,
        favour_id: Annotated[str, typer.Argument(help="The favour id.")],
        note: Annotated[str | None, typer.Option(help="A note.")] = None,
        key: KeyOpt = None,
        server: ServerOpt = DEFAULT_SERVER,
        as_json: JsonOpt = False,
    ) -> None:
        with reporting(), client(key, server) as api:
            favour = getattr(api.favours, step)(cid, favour_id, note=note)
        _show_favour(favour, as_json)

    command.__doc__ = f"{step.capitalize()} a favour."
    return command


for _step in ("accept", "decline", "withdraw", "fulfil", "acknowledge"):
    favour_app.command(_step)(_favour_step(_step))


@favour_app.command("list")
def favour_list(
    cid: Cid,
    all_: Annotated[bool, typer.Option("--all", help="Closed ones too.")] = False,
    key: KeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Favours in a connection."""
    with reporting(), client(key, server) as api:
        favours = api.favours.list(cid, status="all" if all_ else "open")
    if as_json:
        emit_json(favours)
        return
    table(
        "Favours",
        ["id", "asked by", "kind", "status", "returns", "description"],
        [(f.id, f.requester, f.kind, f.status, f.return_of or "", f.description) for f in favours],
    )


@favour_app.command("ledger")
def favour_ledger(
    cid: Cid, key: KeyOpt = None, server: ServerOpt = DEFAULT_SERVER, as_json: JsonOpt = False
) -> None:
    """Favours given, received and returned by each side."""
    with reporting(), client(key, server) as api:
        ledger = api.favours.ledger(cid)
    if as_json:
        emit_json(ledger)
        return
    table(
        "Ledger",
        ["side", "given", "received", "returned", "open asks"],
        [
            (side, s.given, s.received, s.returned, s.open_asks)
            for side, s in (("me", ledger.me), ("them", ledger.them))
        ],
    )


def _show_favour(favour: models.Favour, as_json: bool) -> None:
    if as_json:
        emit_json(favour)
    else:
        console().print(f"Favour {favour.id} {favour.kind!r}: {favour.status}")


def send(
    cid: Cid,
    topic: Annotated[str, typer.Argument(help="The topic (must be granted to you).")],
    content: Annotated[str, typer.Argument(help="The message; '-' reads stdin.")],
    content_type: Annotated[str, typer.Option(help="MIME type of the content.")] = "text/plain",
    key: KeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Send a message within the grants the other party gave you."""
    text = sys.stdin.read() if content == "-" else content
    with reporting(), client(key, server) as api:
        result = api.messages.send(cid, topic=topic, content=text, content_type=content_type)
    if as_json:
        emit_json(result)
    elif result.held:
        console().print(f"Accepted but held (muted) until {when(result.release_time) or 'unmute'}")
    else:
        console().print(f"Delivered {result.id[:16]}… (log #{result.server_seq})")


def inbox(
    cid: Annotated[str | None, typer.Option(help="Only this connection.")] = None,
    unacked: Annotated[bool, typer.Option("--unacked", help="Only unacknowledged.")] = False,
    ack: Annotated[bool, typer.Option("--ack", help="Acknowledge what is shown.")] = False,
    key: KeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Messages delivered to you."""
    with reporting(), client(key, server) as api:
        messages = api.messages.inbox(cid=cid, unacked=unacked).to_list()
        if ack:
            messages = [api.messages.ack(m.id) if m.acked_time is None else m for m in messages]
    if as_json:
        emit_json(messages)
        return
    table(
        "Inbox",
        ["#", "cid", "topic", "received", "acked", "content"],
        [
            (m.id, m.cid[:12], m.topic, when(m.received_time), when(m.acked_time),
             m.content if m.content is not None else "(erased)")
            for m in messages
        ],
    )  # fmt: skip


def log(
    cid: Cid,
    verify: Annotated[
        bool, typer.Option("--verify", help="Verify signatures, chains and rules offline.")
    ] = False,
    key: KeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """A connection's signed log (optionally verified offline)."""
    from rapport_protocol import ProtocolError

    with reporting(), client(key, server) as api:
        entries = api.connections.log(cid).to_list()
    verdict: dict[str, Any] | None = None
    if verify:
        try:
            verified = verify_log(entries)
            verdict = {"valid": True, "count": verified.count, "status": verified.state.status}
        except ProtocolError as exc:
            verdict = {"valid": False, "code": exc.code, "detail": exc.detail,
                       "index": exc.extra.get("index")}  # fmt: skip
    if as_json:
        emit_json({"entries": entries, "verification": verdict})
    else:
        table(
            f"Log of {cid}",
            ["#", "received", "type", "from", "seq"],
            [
                (e.server_seq, when(e.received_time), str(e.object["type"]).rsplit("/", 1)[-1],
                 str(e.object["from"])[:20] + "…", e.object["seq"])
                for e in entries
            ],
        )  # fmt: skip
        if verdict is not None:
            if verdict["valid"]:
                console().print(
                    f"Verified offline: {verdict['count']} objects, status {verdict['status']}"
                )
            else:
                console(stderr=True).print(
                    f"NOT VALID at entry {verdict['index']}: {verdict['code']}: {verdict['detail']}"
                )
    if verdict is not None and not verdict["valid"]:
        raise typer.Exit(1)


def export(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file.")] = None,
    key: KeyOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
) -> None:
    """Export all your data as JSON."""
    with reporting(), client(key, server) as api:
        data = api.account.export()
    text = data.model_dump_json(indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n", "utf-8")
        console().print(f"Wrote {out} ({len(data.connections)} connections)")


def install(app: typer.Typer) -> None:
    """Register the party commands on the ``rapport`` app."""
    for command in (register, whoami, invite, accept, decline, connections, mute, unmute,
                    sever, send, inbox, log, export):  # fmt: skip
        app.command()(command)
    app.add_typer(grant_app, name="grant")
    app.add_typer(favour_app, name="favour")
