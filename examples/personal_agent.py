"""A person's agent with the Rapport SDK: it acts for one person, on their terms.

Accepts an invitation granting only what the person allows, reads and acknowledges the
inbox, narrows or revokes grants, mutes for a while, asks a favour, and can cut a
business off for good. The key never leaves the person's machine.

    python examples/personal_agent.py LINK --server http://127.0.0.1:8000 --key me.json
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from rapport_client import Client, errors, keys, models

ALLOWED_TOPICS = {"order_updates", "security", "receipts"}
"""What this person lets businesses send: anything else asked for is not granted."""


def ensure_registered(client: Client, name: str) -> models.Party:
    """This person's party, registered the first time."""
    try:
        return client.parties.me()
    except errors.InvalidGrant:
        return client.parties.register("person", name)


def accept_on_my_terms(
    client: Client, link: str, allowed: Iterable[str] = ALLOWED_TOPICS
) -> models.Connection:
    """Look the link up, grant only the requested topics the person allows (with the rate
    caps the business proposed), and accept."""
    invitation = client.invitations.lookup(link.rstrip("/").rsplit("/", 1)[-1])
    wanted = set(allowed)
    grants = [g for g in invitation.requested if g["topic"] in wanted]
    return client.invitations.accept(invitation, grants=grants)


def read_inbox(client: Client, cid: str | None = None) -> list[models.InboxMessage]:
    """Every unacknowledged message (all pages), acknowledged as read."""
    unread = client.messages.inbox(cid=cid, unacked=True).to_list()
    for message in unread:
        client.messages.ack(message.id)
    return unread


def grant_in_force(client: Client, cid: str, topic: str) -> models.Grant | None:
    """The grant this person gave for ``topic`` in ``cid``, if any."""
    return next((g for g in client.grants.list(cid).granted_by_me if g.topic == topic), None)


def narrow(client: Client, cid: str, topic: str, count: int, period: str) -> models.Grant | None:
    """Lower a grant's rate cap. Amend is compare-and-swap: if the grant changed meanwhile
    (another device), re-read it and try once more."""
    for _ in range(2):
        current = grant_in_force(client, cid, topic)
        if current is None:
            return None
        spec = {"scope": current.scope, "topic": topic, "rate": {"count": count, "period": period}}
        try:
            return client.grants.amend(cid, current.id, spec)
        except errors.GrantConflict:
            continue
    return None


def stop(client: Client, cid: str, topic: str) -> bool:
    """Revoke the grant for ``topic``; nothing more arrives under it."""
    current = grant_in_force(client, cid, topic)
    if current is None:
        return False
    client.grants.revoke(cid, current.id)
    return True


def quiet_for(client: Client, cid: str, seconds: int, *, except_topics: Iterable[str] = ()) -> None:
    """Mute the business for a while; messages wait and arrive afterwards."""
    client.mutes.set(
        cid, until=client.clock() + seconds, exempt_topics=list(except_topics), mode="hold"
    )


def ask_callback(client: Client, cid: str, why: str) -> models.Favour | None:
    """Ask the business for a callback, if it offered callbacks."""
    try:
        return client.favours.request(cid, kind="callback", description=why)
    except errors.GrantMissing:
        return None


def leave(client: Client, cid: str) -> models.Connection:
    """Cut the business off: delete the content, and never be invited by it again."""
    return client.connections.sever(cid, data="delete", block_reinvite=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("link", help="The invitation link the business gave you.")
    parser.add_argument("--server", default="http://127.0.0.1:8000")
    parser.add_argument("--key", type=Path, default=Path("me.json"))
    parser.add_argument("--name", default="Ann")
    args = parser.parse_args()
    if not args.key.exists():
        keys.save_key(keys.generate_key(), args.key)
    with Client(args.server, key_file=args.key) as client:
        ensure_registered(client, args.name)
        connection = accept_on_my_terms(client, args.link)
        cid = connection.cid
        print(
            f"Connected {cid}; granted:",
            ", ".join(g.topic for g in connection.grants if g.direction == "granted_by_me"),
        )
        for message in read_inbox(client, cid):
            print(f"[{message.topic}] {message.content}")
        narrow(client, cid, "order_updates", 1, "P1D")
        quiet_for(client, cid, 8 * 3600, except_topics=["security"])
        favour = ask_callback(client, cid, "Please call me about my grinder")
        print("callback asked" if favour else "callbacks are not offered")
        verified = client.connections.verify(cid)
        print(f"Log verified offline: {verified.count} signed objects")


if __name__ == "__main__":
    main()
