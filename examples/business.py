"""A business integration with the Rapport SDK.

Registers the business key (once), invites a customer with what it offers and what it asks,
waits for the acceptance on the event stream, sends order updates within the customer's
grants, treats every refusal as the customer's decision, and verifies webhook deliveries.

Run a server (``rapport serve``), then::

    python examples/business.py --server http://127.0.0.1:8000 --key business-key.json

and accept the printed link with ``python examples/personal_agent.py LINK``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rapport_client import Client, errors, keys, models, webhooks

OFFERED = [
    {"scope": "message", "topic": "support", "purpose": "Ask us anything about your order"},
    {"scope": "favour", "topic": "callback"},
]
REQUESTED = [
    {
        "scope": "message",
        "topic": "order_updates",
        "rate": {"count": 3, "period": "P1D"},
        "purpose": "Shipping and delivery of your orders",
    },
    {"scope": "message", "topic": "marketing", "rate": {"count": 1, "period": "P7D"}},
]


def ensure_registered(client: Client, name: str) -> models.Party:
    """The business party of this key, registering it the first time."""
    try:
        return client.parties.me()
    except errors.InvalidGrant:  # the server does not know this key yet
        return client.parties.register("business", name)


def invite_customer(client: Client, label: str) -> models.Invitation:
    """A single-use invitation valid for a week; share ``invitation.url`` with the customer."""
    return client.invitations.create(
        label=label, offered=OFFERED, requested=REQUESTED, expires_in=7 * 86400
    )


def wait_for_acceptance(
    client: Client, invitation: models.Invitation, *, timeout: float = 300
) -> str | None:
    """Follow the event stream until the invitation is accepted; return the connection id.

    A real integration would keep one stream (or a webhook endpoint) running and route
    events by type; this waits for one event.
    """
    deadline = time.monotonic() + timeout
    for event in client.events.stream(after=0, max_reconnects=5):
        body = (event.object or {}).get("body", {})
        if event.type == "connection" and body.get("invitation") == invitation.id:
            return event.cid
        if time.monotonic() > deadline:
            return None
    return None


def notify(client: Client, cid: str, topic: str, text: str) -> str:
    """Send a message and say what happened. Refusals are the customer's choices: record
    them, never work around them."""
    try:
        result = client.messages.send(cid, topic=topic, content=text)
    except errors.GrantMissing:
        return f"not sent: the customer has not granted {topic!r}"
    except errors.RateExceeded as exc:
        return f"not sent: rate cap reached, next slot in {exc.retry_after} s"
    except errors.QuietHours as exc:
        return f"not sent: quiet hours, try again in {exc.retry_after} s"
    except errors.Muted as exc:
        return f"not sent: muted until {exc.until or 'further notice'}"
    except errors.ConnectionSevered:
        return "not sent: the customer severed the connection; apply their data instruction"
    return "held until the customer unmutes" if result.held else "delivered"


def handle_webhook(raw_body: bytes, headers: Mapping[str, str], secret: str) -> dict[str, Any]:
    """Verify a webhook delivery (Standard Webhooks) before trusting a byte of it.

    Raises :class:`rapport_client.webhooks.WebhookVerificationError` for forged, altered
    or replayed (older than 5 minutes) deliveries. De-duplicate on ``webhook-id``.
    """
    payload: dict[str, Any] = webhooks.verify(raw_body, headers, secret)
    return payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="http://127.0.0.1:8000")
    parser.add_argument("--key", type=Path, default=Path("business-key.json"))
    parser.add_argument("--name", default="Kettle & Bean Roasters")
    args = parser.parse_args()
    if not args.key.exists():
        keys.save_key(keys.generate_key(), args.key)
    with Client(args.server, key_file=args.key) as client:
        party = ensure_registered(client, args.name)
        print(f"{party.display_name}: {party.did}")
        invitation = invite_customer(client, args.name)
        print(f"Invite your customer: {invitation.url}")
        cid = wait_for_acceptance(client, invitation)
        if cid is None:
            print("Not accepted yet.")
            return
        print(f"Connected: {cid}")
        print("order update:", notify(client, cid, "order_updates", "Order #1042 has shipped"))
        print("marketing:   ", notify(client, cid, "marketing", "New single-origin beans!"))


if __name__ == "__main__":
    main()
