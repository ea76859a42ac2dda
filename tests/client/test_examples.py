"""The examples work: a business and a person's agent against a live server."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from rapport_client import Client, webhooks
from rapport_protocol import SigningKey

ROOT = Path(__file__).resolve().parents[2]


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", ROOT / "examples" / f"{name}.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_business_and_personal_agent_examples(cli_server: str) -> None:
    business, agent = load("business"), load("personal_agent")
    with (
        Client(cli_server, key=SigningKey.generate()) as shop,
        Client(cli_server, key=SigningKey.generate()) as ann,
    ):
        assert business.ensure_registered(shop, "Roastery").kind == "business"
        assert business.ensure_registered(shop, "Roastery").kind == "business"  # idempotent
        agent.ensure_registered(ann, "Ann")
        invitation = business.invite_customer(shop, "Roastery")
        connection = agent.accept_on_my_terms(ann, invitation.url)
        granted = {g.topic for g in connection.grants if g.direction == "granted_by_me"}
        assert granted == {"order_updates"}  # marketing was asked for, and not allowed
        cid = business.wait_for_acceptance(shop, invitation, timeout=30)
        assert cid == connection.cid

        assert business.notify(shop, cid, "order_updates", "Order #1 shipped") == "delivered"
        assert "has not granted 'marketing'" in business.notify(shop, cid, "marketing", "Sale!")
        assert [m.content for m in agent.read_inbox(ann, cid)] == ["Order #1 shipped"]
        assert agent.read_inbox(ann, cid) == []

        assert agent.narrow(ann, cid, "order_updates", 1, "P1D").rate == {
            "count": 1,
            "period": "P1D",
        }
        assert "rate cap reached" in business.notify(shop, cid, "order_updates", "Order #2 shipped")
        agent.quiet_for(ann, cid, 3600)
        assert agent.ask_callback(ann, cid, "Call me").kind == "callback"
        assert agent.stop(ann, cid, "order_updates") and not agent.stop(ann, cid, "order_updates")
        assert "has not granted" in business.notify(shop, cid, "order_updates", "Order #3")
        assert agent.leave(ann, cid).status == "severed"
        assert "severed" in business.notify(shop, cid, "order_updates", "Order #4")
        assert ann.connections.verify(cid).state.status == "severed"


def test_business_example_verifies_webhooks() -> None:
    business = load("business")
    secret = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQ="
    body = b'{"type":"message","timestamp":"2026-01-01T00:00:00Z","data":{"id":3}}'
    import time

    headers = webhooks.sign(body, msg_id="evt_3", timestamp=int(time.time()), secret=secret)
    assert business.handle_webhook(body, headers, secret)["data"]["id"] == 3
    with pytest.raises(webhooks.WebhookVerificationError):
        business.handle_webhook(body.replace(b"3", b"4"), headers, secret)
