"""``rapport demo``: the whole protocol, step by step, between a business and a person.

Runs against a server started in-process (a temporary SQLite file by default, or any
``--database-url`` such as PostgreSQL), or an existing ``--server``. Both parties use the
SDK exactly as an integration would. Every step states what the protocol requires; the
demo exits non-zero if any step behaves otherwise.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rapport_client import Client, SigningKey, errors, models, verify_log
from rapport_protocol import ProtocolError
from rich.console import Console
from rich.markup import escape

from .output import console

T = TypeVar("T")

BUSINESS = "Kettle & Bean"
PERSON = "Ann"
ORDER_UPDATES = {
    "scope": "message",
    "topic": "order_updates",
    "rate": {"count": 2, "period": "P1D"},
}


class StepFailed(Exception):
    """A step did not behave as the protocol says."""


class Story:
    """Prints the story and keeps score of the steps that misbehaved."""

    def __init__(self, out: Console) -> None:
        self.out = out
        self.failures: list[str] = []
        self.number = 0

    def step(self, title: str) -> None:
        self.number += 1
        self.out.print(f"\n[bold]{self.number}. {title}[/]")

    def say(self, who: str, text: str, note: str = "") -> None:
        self.out.print(f"   [cyan]{who:>13}[/] {escape(text)}{note}", highlight=False)

    def check(self, condition: bool, what: str) -> None:
        if condition:
            return
        self.failures.append(f"step {self.number}: {what}")
        self.out.print(f"   [bold red]UNEXPECTED:[/] {escape(what)}", highlight=False)

    def ok(self, who: str, what: str, action: Callable[[], T]) -> T:
        """Run an action that must succeed."""
        try:
            result = action()
        except errors.RapportError as exc:
            self.failures.append(f"step {self.number}: {what}: {exc}")
            self.out.print(
                f"   [bold red]UNEXPECTED:[/] {escape(what)} failed: {escape(str(exc))}",
                highlight=False,
            )
            raise StepFailed(what) from exc
        self.say(who, what)
        return result

    def refused(
        self, who: str, what: str, action: Callable[[], Any], expected: type[errors.RapportError]
    ) -> errors.RapportError | None:
        """Run an action that the protocol must refuse with ``expected``."""
        try:
            action()
        except expected as exc:
            extra = ""
            if isinstance(exc, errors.TooManyRequests) and exc.retry_after is not None:
                extra = f", retry after {exc.retry_after} s"
            if isinstance(exc, errors.Muted):
                extra = f", muted until {exc.until}"
            self.say(
                who, f"{what} → ", f"[yellow]refused[/]: {exc.code} (HTTP {exc.status}{extra})"
            )
            return exc
        except errors.RapportError as exc:
            self.check(False, f"{what}: expected {expected.default_code}, got {exc.code}")
            return None
        self.check(False, f"{what}: expected {expected.default_code}, but it was accepted")
        return None


def play(base_url: str, out: Console) -> list[str]:
    """Play the story against ``base_url``; return the steps that misbehaved."""
    story = Story(out)
    biz = Client(base_url, key=SigningKey.generate())
    ann = Client(base_url, key=SigningKey.generate())
    try:
        _play(story, biz, ann)
    except StepFailed:
        story.out.print("   [bold red]stopping: a later step depends on this one[/]")
    except errors.RapportError as exc:  # a read between the steps failed
        story.failures.append(f"step {story.number}: {exc}")
        story.out.print(f"   [bold red]UNEXPECTED:[/] {escape(str(exc))}")
    finally:
        biz.close()
        ann.close()
    return story.failures


def _inbox(client: Client, cid: str) -> list[models.InboxMessage]:
    return client.messages.inbox(cid=cid).to_list()


def _play(s: Story, biz: Client, ann: Client) -> None:
    B, A = BUSINESS, PERSON

    s.step("Both parties register their own keys (the server never sees a private key)")
    s.ok(
        B, f"registered as a business: {biz.did[:28]}…", lambda: biz.parties.register("business", B)
    )
    s.ok(A, f"registered as a person:   {ann.did[:28]}…", lambda: ann.parties.register("person", A))

    s.step("The business invites: it offers support messages and callbacks, asks to send")
    invitation = s.ok(
        B,
        "created an invitation link",
        lambda: biz.invitations.create(
            label=B,
            offered=[
                {"scope": "message", "topic": "support"},
                {"scope": "favour", "topic": "callback"},
            ],
            requested=[ORDER_UPDATES, {"scope": "message", "topic": "marketing"}],
            expires_in=7 * 86400,
        ),
    )
    s.say(B, f"link: {invitation.url}")

    s.step("Ann opens the link, sees what is offered and asked, and accepts on her terms")
    seen = s.ok(
        A, "looked up the invitation", lambda: ann.invitations.lookup(invitation.token or "")
    )
    s.say(A, "offered to me:  " + ", ".join(_grant_text(g) for g in seen.offered))
    s.say(A, "asked of me:    " + ", ".join(_grant_text(g) for g in seen.requested))
    grants: list[dict[str, Any]] = [
        ORDER_UPDATES,
        {"scope": "message", "topic": "security"},
        {"scope": "message", "topic": "receipts"},
        {"scope": "favour", "topic": "review"},
    ]
    conn = s.ok(
        A,
        "accepted, granting " + ", ".join(_grant_text(g) for g in grants) + " (not marketing)",
        lambda: ann.invitations.accept(seen, grants=grants),
    )
    cid = conn.cid
    view = biz.connections.get(cid)
    s.say(
        B,
        f"sees connection {cid}: {view.status}; may send "
        + ", ".join(
            _grant_text(g.model_dump()) for g in view.grants if g.direction == "granted_to_me"
        ),
    )
    s.check(view.status == "active", "the connection is active for the business")

    s.step("Sends within the grant are delivered")
    for n in (1, 2):
        text = f"Order #104{n} has shipped"

        def send_update(text: str = text) -> models.SendResult:
            return biz.messages.send(cid, topic="order_updates", content=text)

        s.ok(B, f"sent order_updates {text!r}", send_update)
    inbox = _inbox(ann, cid)
    for m in inbox:
        s.say(A, f"inbox #{m.id} [{m.topic}] {m.content!r}")
    s.check(len(inbox) == 2, "Ann's inbox holds both updates")

    s.step("A send outside the grants is refused")
    s.refused(
        B,
        "send marketing '50% off beans!'",
        lambda: biz.messages.send(cid, topic="marketing", content="50% off beans!"),
        errors.GrantMissing,
    )

    s.step("The rate cap holds: 2 order updates a day")
    capped = s.refused(
        B,
        "send a third order update today",
        lambda: biz.messages.send(cid, topic="order_updates", content="Order #1043"),
        errors.RateExceeded,
    )
    s.check(
        isinstance(capped, errors.RateExceeded) and bool(capped.retry_after),
        "rate_exceeded says when to retry",
    )

    s.step("Ann mutes the business (hold): messages wait until she unmutes")
    s.ok(A, "muted the business (hold, until lifted)", lambda: ann.mutes.set(cid, mode="hold"))
    held = s.ok(
        B,
        "sent receipts 'Receipt for order #1042'",
        lambda: biz.messages.send(cid, topic="receipts", content="Receipt for order #1042"),
    )
    s.say(B, f"server answers held={held.held}")
    s.check(held.held, "a message to a holding mute is held")
    waiting = _inbox(ann, cid)
    s.say(A, f"inbox: still {len(waiting)} messages (the receipt waits for the mute to end)")
    s.check(len(waiting) == 2, "the held message is not in Ann's inbox yet")
    s.ok(A, "unmuted", lambda: ann.mutes.clear(cid))
    released = [m.content for m in _inbox(ann, cid)]
    s.say(A, f"inbox now ends with {released[-1]!r}")
    s.check("Receipt for order #1042" in released, "the held message is delivered on unmute")

    s.step("Ann mutes again (reject) for an hour, except security notices")
    until = ann.clock() + 3600
    s.ok(
        A,
        "muted (reject, 1 h, exempt: security)",
        lambda: ann.mutes.set(cid, mode="reject", until=until, exempt_topics=["security"]),
    )
    muted = s.refused(
        B,
        "send receipts while muted",
        lambda: biz.messages.send(cid, topic="receipts", content="Receipt #1043"),
        errors.Muted,
    )
    s.check(isinstance(muted, errors.Muted) and muted.until == until, "muted says until when")
    s.ok(
        B,
        "sent security 'New sign-in from Lisbon' (exempt: delivered)",
        lambda: biz.messages.send(cid, topic="security", content="New sign-in from Lisbon"),
    )
    s.ok(A, "unmuted", lambda: ann.mutes.clear(cid))

    s.step("Favours: Ann asks for a callback; the business returns the favour with a review ask")
    callback = s.ok(
        A,
        "asked a favour: callback 'Please call me about my grinder'",
        lambda: ann.favours.request(
            cid, kind="callback", description="Please call me about my grinder"
        ),
    )
    s.ok(B, "accepted the callback", lambda: biz.favours.accept(cid, callback.id))
    s.ok(
        B, "fulfilled it (called Ann)", lambda: biz.favours.fulfil(cid, callback.id, note="called")
    )
    s.ok(A, "acknowledged it with thanks", lambda: ann.favours.acknowledge(cid, callback.id))
    review = s.ok(
        B,
        "asked a favour back: review, return_of = the callback",
        lambda: biz.favours.request(
            cid, kind="review", description="Would you review us?", return_of=callback.id
        ),
    )
    s.ok(
        A,
        "accepted and fulfilled the review",
        lambda: (ann.favours.accept(cid, review.id), ann.favours.fulfil(cid, review.id)),
    )
    s.ok(B, "acknowledged it", lambda: biz.favours.acknowledge(cid, review.id))
    for who, client in ((A, ann), (B, biz)):
        ledger = client.favours.ledger(cid)
        s.say(
            who,
            f"ledger: me given {ledger.me.given} received {ledger.me.received} "
            f"returned {ledger.me.returned} | them given {ledger.them.given} "
            f"received {ledger.them.received} returned {ledger.them.returned}",
        )
    mine, theirs = ann.favours.ledger(cid).me, biz.favours.ledger(cid).them
    s.check(
        (mine.given, mine.received, mine.returned) == (1, 1, 1) and theirs == mine,
        "Ann gave one (the review), received one (the callback), and her review returned it",
    )

    s.step("Ann narrows a grant (compare-and-swap) and revokes another")
    by_me = ann.grants.list(cid).granted_by_me
    order = next(g for g in by_me if g.topic == "order_updates")
    s.ok(
        A,
        "amended order_updates to 1 per week",
        lambda: ann.grants.amend(
            cid,
            order.id,
            {"scope": "message", "topic": "order_updates", "rate": {"count": 1, "period": "P7D"}},
        ),
    )
    s.refused(
        A,
        "amend the same (now superseded) grant again",
        lambda: ann.grants.amend(cid, order.id, {"scope": "message", "topic": "order_updates"}),
        errors.GrantConflict,
    )
    receipts = next(g for g in by_me if g.topic == "receipts")
    s.ok(A, "revoked the receipts grant", lambda: ann.grants.revoke(cid, receipts.id))
    s.refused(
        B,
        "send receipts after the revoke",
        lambda: biz.messages.send(cid, topic="receipts", content="Receipt #1044"),
        errors.GrantMissing,
    )

    s.step("Each side's event stream recorded what it had to learn, in order")
    for who, client, expected in (
        (A, ann, {"message", "favour"}),
        (B, biz, {"connection", "mute"}),
    ):
        events = [e for e in client.events.list() if e.cid == cid]
        counts: dict[str, int] = {}
        for event in events:
            counts[event.type] = counts.get(event.type, 0) + 1
        s.say(who, f"{len(events)} events: " + ", ".join(f"{k} ×{v}" for k, v in counts.items()))
        s.check(
            [e.id for e in events] == sorted(e.id for e in events) and expected <= counts.keys(),
            f"{who}'s stream is ordered and has {sorted(expected)}",
        )

    s.step("Ann severs: delete her data and block re-invitations")
    s.ok(
        A,
        "severed (data: delete, block_reinvite)",
        lambda: ann.connections.sever(cid, data="delete", block_reinvite=True),
    )
    s.refused(
        B,
        "send security after the sever",
        lambda: biz.messages.send(cid, topic="security", content="Still there?"),
        errors.ConnectionSevered,
    )
    s.refused(
        B,
        "invite Ann again",
        lambda: biz.invitations.create(label=B, to=[ann.did], requested=[ORDER_UPDATES]),
        errors.ReinviteBlocked,
    )

    s.step("Both sides verify the signed log offline (signatures, chains, every rule)")
    ids = {}
    for who, client in ((A, ann), (B, biz)):
        entries = client.connections.log(cid).to_list()
        try:
            verified = verify_log(entries)
        except ProtocolError as exc:
            s.check(False, f"{who}'s log verifies ({exc.code} at {exc.extra.get('index')})")
            continue
        erased = all("payload" not in e.object for e in entries)
        s.say(
            who,
            f"verified {verified.count} signed objects; final status "
            f"{verified.state.status}; message content erased: {erased}",
        )
        s.check(verified.state.status == "severed" and erased, f"{who}'s log ends severed, erased")
        ids[who] = [e.object["id"] for e in entries]
    s.check(len(ids) == 2 and ids[A] == ids[B], "both parties hold the same log")


def _grant_text(grant: dict[str, Any]) -> str:
    rate = grant.get("rate")
    text = f"{grant['scope']}:{grant['topic']}"
    return text + (f" (≤{rate['count']}/{rate['period']})" if rate else "")


@contextmanager
def in_process_server(database_url: str) -> Iterator[str]:
    """A server on 127.0.0.1 (free port) in a background thread; yields its URL."""
    import socket

    import uvicorn
    from rapport_server.app import create_app
    from rapport_server.config import Settings

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    base = f"http://127.0.0.1:{port}"
    settings = Settings(
        database_url=database_url, public_url=base, migrate_on_start=True, log_level="warning"
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the in-process server did not start")
            time.sleep(0.05)
        yield base
    finally:
        server.should_exit = True
        thread.join(15)


def demo(
    server: Annotated[
        str | None,
        typer.Option("--server", help="Use this running server instead of starting one."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Database of the in-process server (default: a temporary SQLite file).",
        ),
    ] = None,
) -> None:
    """Play the protocol's story between a business and a person, step by step."""
    out = console(markup=True)
    if server is not None:
        out.print(f"Rapport demo against {server}")
        failures = play(server, out)
    else:
        with tempfile.TemporaryDirectory(prefix="rapport-demo-") as tmp:
            url = database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'demo.db'}"
            from sqlalchemy.engine import make_url

            out.print(f"Rapport demo on an in-process server ({make_url(url).get_backend_name()})")
            with in_process_server(url) as base:
                failures = play(base, out)
    if failures:
        err = console(stderr=True, markup=True)
        err.print(f"\n[bold red]{len(failures)} step(s) misbehaved:[/]")
        for failure in failures:
            err.print(f"  - {escape(failure)}")
        raise typer.Exit(1)
    out.print("\n[bold green]Every step behaved as the protocol says.[/]")
