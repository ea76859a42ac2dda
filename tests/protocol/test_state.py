"""Table tests of the connection, grant, mute, sever and favour machines."""

from __future__ import annotations

import pytest
from rapport_protocol import SigningKey, apply, decide, derive_cid, errors, sign, verify_log
from rapport_protocol.decision import Allowed, Refused
from rapport_protocol.envelope import SignedObject
from rapport_protocol.favours import ledger
from rapport_protocol.state import CONNECTION_TRANSITIONS, apply_decided
from rapport_protocol.types import (
    AcceptBody,
    GrantSpec,
    InvitationBody,
    MessageType,
)

from .conftest import T0, Conn, connect

M = MessageType
DAY = 86400


def msg(topic: str, content: str = "hi") -> dict[str, str]:
    return {"topic": topic, "content": content}


def test_transition_table_covers_every_type_once_connected() -> None:
    assert set(CONNECTION_TRANSITIONS["active"]) == set(MessageType) - {
        M.INVITATION,
        M.ACCEPT,
        M.DECLINE,
    }
    assert CONNECTION_TRANSITIONS["severed"] == {}


def test_accept_makes_connection_active_with_both_sides_grants(conn: Conn) -> None:
    assert conn.state.status == "active"
    assert conn.state.grant_for(1, "message", "order_updates") is not None
    assert conn.state.grant_for(0, "message", "support") is not None
    assert conn.state.grant_for(1, "message", "marketing") is None


def test_grant_covers_only_its_topic(conn: Conn) -> None:
    conn.send(conn.business, M.MESSAGE, msg("order_updates"), T0 + 1)
    with pytest.raises(errors.GrantMissing):
        conn.send(conn.business, M.MESSAGE, msg("marketing"), T0 + 2)


def test_rate_cap_is_a_sliding_window_with_retry_after(conn: Conn) -> None:
    for i in range(3):
        conn.send(conn.business, M.MESSAGE, msg("order_updates"), T0 + i * 100)
    probe = conn.business.make(M.MESSAGE, msg("order_updates"), cid=conn.cid, at=T0 + 300)
    verdict = decide(conn.state, probe, T0 + 300)
    assert verdict == Refused("rate_exceeded", retry_after=DAY - 300)
    assert isinstance(decide(conn.state, probe, T0 + DAY), Allowed)


def test_mute_reject_refuses_until_expiry_except_exempt_topics(conn: Conn) -> None:
    conn.send(
        conn.person,
        M.MUTE,
        {"until": T0 + 7 * DAY, "exempt_topics": ["security"], "mode": "reject"},
        T0 + 1,
    )
    with pytest.raises(errors.Muted) as info:
        conn.send(conn.business, M.MESSAGE, msg("order_updates"), T0 + 2)
    assert info.value.extra["refusal"].muted_until == T0 + 7 * DAY
    conn.send(conn.business, M.MESSAGE, msg("security"), T0 + 3)
    conn.send(conn.business, M.MESSAGE, msg("order_updates"), T0 + 7 * DAY)


def test_mute_hold_allows_but_holds_until_the_mute_ends(conn: Conn) -> None:
    conn.send(conn.person, M.MUTE, {"until": T0 + 3600}, T0)
    probe = conn.business.make(M.MESSAGE, msg("order_updates"), cid=conn.cid, at=T0 + 5)
    assert decide(conn.state, probe, T0 + 5) == Allowed(
        probe_grant(conn), held=True, release_time=T0 + 3600
    )
    conn.send(conn.person, M.UNMUTE, {}, T0 + 10)
    assert decide(conn.state, probe, T0 + 10) == Allowed(probe_grant(conn))
    with pytest.raises(errors.MuteNotFound):
        conn.send(conn.person, M.UNMUTE, {}, T0 + 11)


def test_apply_decided_is_apply_with_the_decision_it_admitted_under(conn: Conn) -> None:
    plain = conn.business.make(M.MESSAGE, msg("order_updates"), cid=conn.cid, at=T0 + 1)
    state, verdict = apply_decided(conn.state, plain, T0 + 1)
    assert state == apply(conn.state, plain, T0 + 1)
    assert verdict == decide(conn.state, plain, T0 + 1) == Allowed(probe_grant(conn))
    conn.send(conn.person, M.MUTE, {"until": T0 + 3600}, T0 + 2)
    muted = conn.business.make(M.MESSAGE, msg("order_updates"), cid=conn.cid, at=T0 + 5)
    assert apply_decided(conn.state, muted, T0 + 5)[1] == Allowed(
        probe_grant(conn), held=True, release_time=T0 + 3600
    )
    unmute = conn.person.make(M.UNMUTE, {}, cid=conn.cid, at=T0 + 6)
    assert apply_decided(conn.state, unmute, T0 + 6) == (apply(conn.state, unmute, T0 + 6), None)
    refused = conn.business.make(M.MESSAGE, msg("no_grant"), cid=conn.cid, at=T0 + 7)
    with pytest.raises(errors.GrantMissing):
        apply_decided(conn.state, refused, T0 + 7)


def probe_grant(conn: Conn) -> str:
    grant = conn.state.grant_for(1, "message", "order_updates")
    assert grant is not None
    return grant.id


def test_business_cannot_mute_on_behalf_of_the_person(conn: Conn) -> None:
    conn.send(conn.business, M.MUTE, {"mode": "reject"}, T0)
    # The business muted the person; the person's sends to the business are refused ...
    with pytest.raises(errors.Muted):
        conn.send(conn.person, M.MESSAGE, msg("support"), T0 + 1)
    # ... but the business's own sends are unaffected.
    conn.send(conn.business, M.MESSAGE, msg("order_updates"), T0 + 2)


def test_amend_is_compare_and_swap_on_the_previous_grant_id(conn: Conn) -> None:
    old = probe_grant(conn)
    narrowed = {"scope": "message", "topic": "order_updates", "rate": {"count": 1, "period": "P1D"}}
    conn.send(conn.person, M.GRANT_AMEND, {"replaces": old, "grant": narrowed}, T0 + 1)
    with pytest.raises(errors.GrantConflict):
        conn.send(conn.person, M.GRANT_AMEND, {"replaces": old, "grant": narrowed}, T0 + 2)
    assert conn.state.grants[old].status == "superseded"
    # The business cannot amend what the person granted.
    with pytest.raises(errors.GrantNotFound):
        conn.send(
            conn.business, M.GRANT_AMEND, {"replaces": probe_grant(conn), "grant": narrowed}, T0 + 3
        )


def test_amend_keeps_rate_usage(conn: Conn) -> None:
    conn.send(conn.business, M.MESSAGE, msg("order_updates"), T0 + 1)
    narrowed = {"scope": "message", "topic": "order_updates", "rate": {"count": 1, "period": "P1D"}}
    conn.send(
        conn.person, M.GRANT_AMEND, {"replaces": probe_grant(conn), "grant": narrowed}, T0 + 2
    )
    with pytest.raises(errors.RateExceeded):
        conn.send(conn.business, M.MESSAGE, msg("order_updates"), T0 + 3)


def test_an_amendment_inherits_what_the_spec_says_and_no_more(conn: Conn) -> None:
    """Spec §13: the usage record holds at most the latest ``count`` of the cap in force;
    widening the period does not bring back deliveries that had left the old window; a
    cap added to an uncapped grant starts counting at the amendment."""
    topic = "order_updates"  # three a day

    def amend(rate: dict[str, object] | None, at: int) -> tuple[int, ...]:
        spec: dict[str, object] = {"scope": "message", "topic": topic}
        if rate is not None:
            spec["rate"] = rate
        conn.send(conn.person, M.GRANT_AMEND, {"replaces": probe_grant(conn), "grant": spec}, at)
        grant = conn.state.grant_for(1, "message", topic)
        assert grant is not None
        return grant.usage

    for i in range(3):
        conn.send(conn.business, M.MESSAGE, msg(topic), T0 + i)
    # Narrowed to one a day: the latest delivery is kept, and it still counts.
    assert amend({"count": 1, "period": "P1D"}, T0 + 10) == (T0 + 2,)
    with pytest.raises(errors.RateExceeded):
        conn.send(conn.business, M.MESSAGE, msg(topic), T0 + 11)
    # Two days on, widened to one a week: what had left the day's window stays gone.
    assert amend({"count": 1, "period": "P7D"}, T0 + 2 * DAY) == ()
    conn.send(conn.business, M.MESSAGE, msg(topic), T0 + 2 * DAY + 1)
    # Uncapped, a delivery, then capped again: counting starts at the second amendment.
    assert amend(None, T0 + 2 * DAY + 2) == ()
    conn.send(conn.business, M.MESSAGE, msg(topic), T0 + 2 * DAY + 3)
    assert amend({"count": 1, "period": "P7D"}, T0 + 2 * DAY + 4) == ()
    conn.send(conn.business, M.MESSAGE, msg(topic), T0 + 2 * DAY + 5)
    with pytest.raises(errors.RateExceeded):
        conn.send(conn.business, M.MESSAGE, msg(topic), T0 + 2 * DAY + 6)


def test_revoke_then_issue_again(conn: Conn) -> None:
    gid = probe_grant(conn)
    conn.send(conn.person, M.GRANT_REVOKE, {"grant_id": gid}, T0 + 1)
    with pytest.raises(errors.GrantMissing):
        conn.send(conn.business, M.MESSAGE, msg("order_updates"), T0 + 2)
    with pytest.raises(errors.GrantConflict):
        conn.send(conn.person, M.GRANT_REVOKE, {"grant_id": gid}, T0 + 3)
    conn.send(
        conn.person,
        M.GRANT_ISSUE,
        {"grant": {"scope": "message", "topic": "order_updates"}},
        T0 + 4,
    )
    with pytest.raises(errors.GrantExists):
        conn.send(
            conn.person,
            M.GRANT_ISSUE,
            {"grant": {"scope": "message", "topic": "order_updates"}},
            T0 + 5,
        )
    conn.send(conn.business, M.MESSAGE, msg("order_updates"), T0 + 6)


def test_wildcard_grant_applies_after_exact_topics() -> None:
    c = connect(person_grants=[GrantSpec(scope="message", topic="*")])
    c.send(c.business, M.MESSAGE, msg("anything"), T0)


def test_expired_grant_is_refused_with_its_own_code() -> None:
    c = connect(person_grants=[GrantSpec(scope="message", topic="news", expires_time=T0 + 10)])
    c.send(c.business, M.MESSAGE, msg("news"), T0 + 9)
    with pytest.raises(errors.GrantExpired):
        c.send(c.business, M.MESSAGE, msg("news"), T0 + 10)


def test_quiet_hours_are_local_time_and_cross_midnight() -> None:
    quiet = {"start": "22:00", "end": "07:00", "tz": "Europe/Paris"}
    c = connect(
        person_grants=[
            GrantSpec.model_validate({"scope": "message", "topic": "news", "quiet_hours": quiet})
        ]
    )
    # T0 is 09:00 in Paris (UTC+1 in January): allowed.
    c.send(c.business, M.MESSAGE, msg("news"), T0)
    night = T0 + 14 * 3600  # 23:00 Paris
    probe = c.business.make(M.MESSAGE, msg("news"), cid=c.cid, at=night)
    assert decide(c.state, probe, night) == Refused("quiet_hours", retry_after=8 * 3600)


def test_quiet_hours_across_a_dst_change() -> None:
    # 2027-03-28 is the spring-forward night in Europe/Paris: 02:00 -> 03:00.
    from datetime import datetime
    from zoneinfo import ZoneInfo

    quiet = {"start": "01:00", "end": "04:00", "tz": "Europe/Paris"}
    c = connect(
        person_grants=[
            GrantSpec.model_validate({"scope": "message", "topic": "news", "quiet_hours": quiet})
        ]
    )
    at = int(datetime(2027, 3, 28, 1, 30, tzinfo=ZoneInfo("Europe/Paris")).timestamp())
    probe = c.business.make(M.MESSAGE, msg("news"), cid=c.cid, at=at)
    # Wall clock says 2.5 hours to go, but one hour is skipped: 1.5 hours really remain.
    assert decide(c.state, probe, at) == Refused("quiet_hours", retry_after=90 * 60)


def test_sever_is_terminal_and_ends_everything(conn: Conn) -> None:
    req = conn.send(
        conn.person, M.FAVOUR_REQUEST, {"kind": "callback", "description": "call me"}, T0
    )
    conn.send(conn.person, M.SEVER, {"data": "delete", "block_reinvite": True}, T0 + 1)
    st = conn.state
    assert st.status == "severed"
    assert st.active_grants == {} and st.mutes == {}
    assert all(g.status in ("ended_by_sever", "superseded", "revoked") for g in st.grants.values())
    assert st.favours[req.id].status == "cancelled"
    assert st.severance is not None and st.severance.block_reinvite
    probe = conn.business.make(M.MESSAGE, msg("order_updates"), cid=conn.cid, at=T0 + 2)
    assert decide(st, probe, T0 + 2) == Refused("connection_severed")
    for mtype, body in [
        (M.MESSAGE, msg("order_updates")),
        (M.GRANT_ISSUE, {"grant": {"scope": "message", "topic": "x"}}),
        (M.SEVER, {"data": "delete"}),
    ]:
        with pytest.raises(errors.ConnectionSevered):
            conn.send(conn.business, mtype, body, T0 + 3)


def test_favour_lifecycle_return_and_ledger(conn: Conn) -> None:
    ask = conn.send(conn.person, M.FAVOUR_REQUEST, {"kind": "callback", "description": "call"}, T0)
    with pytest.raises(errors.FavourStateError):  # only the doer accepts
        conn.send(conn.person, M.FAVOUR_ACCEPT, {"favour": ask.id}, T0 + 1)
    conn.send(conn.business, M.FAVOUR_ACCEPT, {"favour": ask.id}, T0 + 1)
    conn.send(conn.business, M.FAVOUR_FULFIL, {"favour": ask.id, "note": "called"}, T0 + 2)
    conn.send(conn.person, M.FAVOUR_ACKNOWLEDGE, {"favour": ask.id}, T0 + 3)
    back = conn.send(
        conn.business,
        M.FAVOUR_REQUEST,
        {"kind": "review", "description": "review us?", "return_of": ask.id},
        T0 + 4,
    )
    with pytest.raises(errors.FavourReturnInvalid):  # one return per favour
        conn.send(
            conn.business,
            M.FAVOUR_REQUEST,
            {"kind": "review", "description": "again", "return_of": ask.id},
            T0 + 5,
        )
    conn.send(conn.person, M.FAVOUR_ACCEPT, {"favour": back.id}, T0 + 6)
    conn.send(conn.person, M.FAVOUR_FULFIL, {"favour": back.id}, T0 + 7)
    business, person = ledger(conn.state.favours, T0 + 8)
    assert (business.given, business.received, business.returned) == (1, 1, 0)
    assert (person.given, person.received, person.returned) == (1, 1, 1)


def test_favour_return_must_answer_a_favour_done_for_the_requester(conn: Conn) -> None:
    ask = conn.send(conn.person, M.FAVOUR_REQUEST, {"kind": "callback", "description": "c"}, T0)
    with pytest.raises(errors.FavourReturnInvalid):  # not yet fulfilled
        conn.send(
            conn.business,
            M.FAVOUR_REQUEST,
            {"kind": "review", "description": "r", "return_of": ask.id},
            T0 + 1,
        )


def test_unanswered_favour_expires_by_itself(conn: Conn) -> None:
    ask = conn.send(
        conn.person,
        M.FAVOUR_REQUEST,
        {"kind": "callback", "description": "c"},
        T0,
        expires_time=T0 + 60,
    )
    assert conn.state.favours[ask.id].status_at(T0 + 60) == "expired"
    with pytest.raises(errors.FavourStateError):
        conn.send(conn.business, M.FAVOUR_ACCEPT, {"favour": ask.id}, T0 + 61)


def test_favour_request_needs_a_favour_grant(conn: Conn) -> None:
    with pytest.raises(errors.GrantMissing):
        conn.send(conn.person, M.FAVOUR_REQUEST, {"kind": "lend-money", "description": "x"}, T0)


def test_replay_and_chain_gaps_are_refused(conn: Conn) -> None:
    first = conn.send(conn.business, M.MESSAGE, msg("order_updates"), T0)
    with pytest.raises(errors.Replayed):
        apply(conn.state, _resign_same(first), T0)
    gap = sign(
        conn.business.key,
        M.MESSAGE,
        {"topic": "order_updates"},
        payload="hi",
        created_time=T0,
        cid=conn.cid,
        seq=5,
        prev=first.id,
    )
    with pytest.raises(errors.ChainBroken):
        apply(conn.state, gap, T0)
    wrong_prev = sign(
        conn.business.key,
        M.MESSAGE,
        {"topic": "order_updates"},
        payload="hi",
        created_time=T0,
        cid=conn.cid,
        seq=2,
        prev="0" * 64,
    )
    with pytest.raises(errors.ChainBroken):
        apply(conn.state, wrong_prev, T0)


def _resign_same(obj):  # type: ignore[no-untyped-def]
    return obj


def test_stranger_and_wrong_connection_are_refused(conn: Conn) -> None:
    stranger = SigningKey.from_seed(b"\x33" * 32)
    obj = sign(
        stranger,
        M.MESSAGE,
        {"topic": "order_updates"},
        payload="hi",
        created_time=T0,
        cid=conn.cid,
        seq=1,
    )
    with pytest.raises(errors.NotAParty):
        apply(conn.state, obj, T0)
    other = conn.business.make(M.MESSAGE, msg("order_updates"), cid="f" * 32, at=T0)
    with pytest.raises(errors.WrongConnection):
        apply(conn.state, other, T0)


def test_invitation_expiry_decline_and_addressing() -> None:
    biz = SigningKey.from_seed(b"\x11" * 32)
    ann = SigningKey.from_seed(b"\x22" * 32)
    inv = sign(
        biz,
        M.INVITATION,
        InvitationBody(label="R", kind="business"),
        created_time=T0,
        expires_time=T0 + 100,
    )
    state = apply(None, inv, T0)
    assert state.status_at(T0 + 100) == "expired"
    accept = sign(
        ann,
        M.ACCEPT,
        AcceptBody(invitation=inv.id, label="A", kind="person"),
        created_time=T0 + 100,
        cid=derive_cid(inv.id, ann.did),
        seq=1,
        thid=inv.id,
    )
    with pytest.raises(errors.InvitationExpired):
        apply(state, accept, T0 + 100)
    decline = sign(
        ann,
        M.DECLINE,
        {"invitation": inv.id},
        created_time=T0 + 1,
        cid=derive_cid(inv.id, ann.did),
        seq=1,
        thid=inv.id,
    )
    declined = apply(state, decline, T0 + 1)
    assert declined.status == "declined"
    with pytest.raises(errors.ConnectionNotActive):
        apply(declined, accept, T0 + 2)
    own = sign(
        biz,
        M.ACCEPT,
        AcceptBody(invitation=inv.id, label="R", kind="business"),
        created_time=T0,
        cid=derive_cid(inv.id, biz.did),
        seq=1,
        thid=inv.id,
    )
    with pytest.raises(errors.InvitationNotForYou):
        apply(state, own, T0)


def test_a_person_may_invite_a_business() -> None:
    ann = SigningKey.from_seed(b"\x22" * 32)
    biz = SigningKey.from_seed(b"\x11" * 32)
    inv = sign(ann, M.INVITATION, InvitationBody(label="Ann", kind="person"), created_time=T0)
    accept = sign(
        biz,
        M.ACCEPT,
        AcceptBody(invitation=inv.id, label="R", kind="business"),
        created_time=T0,
        cid=derive_cid(inv.id, biz.did),
        seq=1,
        thid=inv.id,
    )
    state = apply(apply(None, inv, T0), accept, T0)
    assert state.status == "active" and state.kinds == ("person", "business")


def test_key_rotation_moves_a_role_to_the_new_key(conn: Conn) -> None:
    new = SigningKey.from_seed(b"\x44" * 32)
    rot = sign(conn.business.key, M.KEY_ROTATION, {"new_key": new.did}, created_time=T0)
    conn.state = apply(conn.state, rot, T0)
    conn.log.append((rot.raw, T0))
    conn.business.key = new
    conn.send(conn.business, M.MESSAGE, msg("order_updates"), T0 + 1)
    old = sign(
        SigningKey.from_seed(b"\x11" * 32),
        M.MESSAGE,
        {"topic": "order_updates"},
        payload="hi",
        created_time=T0,
        cid=conn.cid,
        seq=3,
        prev=conn.business.prev,
    )
    with pytest.raises(errors.NotAParty):
        apply(conn.state, old, T0 + 2)
    assert verify_log(conn.log).state == conn.state


def test_state_round_trips_through_json(conn: Conn) -> None:
    conn.send(conn.business, M.MESSAGE, msg("order_updates"), T0)
    conn.send(conn.person, M.MUTE, {"until": T0 + 99, "exempt_topics": ["security"]}, T0)
    again = type(conn.state).model_validate_json(conn.state.model_dump_json())
    assert again == conn.state


def test_log_verifies_from_signatures_alone_and_detects_tampering(conn: Conn) -> None:
    conn.send(conn.business, M.MESSAGE, msg("order_updates"), T0 + 1)
    conn.send(conn.person, M.SEVER, {"data": "export_then_delete"}, T0 + 2)
    assert verify_log(conn.log).count == len(conn.log)
    tampered = [(dict(raw), at) for raw, at in conn.log]
    tampered[2] = ({**tampered[2][0], "created_time": T0 + 5}, T0 + 1)
    with pytest.raises(errors.IdMismatch) as info:
        verify_log(tampered)
    assert info.value.extra["index"] == 2
    with pytest.raises(errors.ProtocolError):
        verify_log([conn.log[0], conn.log[2]])  # a dropped object breaks the chain


def test_broadcast_applies_to_each_connection_without_touching_chains(conn: Conn) -> None:
    cast = sign(
        conn.business.key, M.MESSAGE, {"topic": "order_updates"}, created_time=T0, payload="hi"
    )
    before = conn.state.heads
    after = apply(conn.state, cast, T0)
    assert after.heads == before
    assert after.grant_for(1, "message", "order_updates").usage == (T0,)  # type: ignore[union-attr]
    stranger_cast = sign(
        SigningKey.from_seed(b"\x55" * 32), M.MESSAGE, {"topic": "x"}, created_time=T0, payload=""
    )
    with pytest.raises(errors.NotAParty):
        apply(conn.state, stranger_cast, T0)


def test_an_uncapped_delivery_changes_only_the_last_time() -> None:
    c = connect(person_grants=[GrantSpec(scope="message", topic="news")])
    before = c.state
    cast = sign(c.business.key, M.MESSAGE, {"topic": "news"}, created_time=T0, payload="hi")
    for now in (T0 + 5, before.last_time - 1):
        expected = before.model_copy(update={"last_time": max(before.last_time, now)})
        after = apply(before, cast, now)
        assert after == expected
        assert after.model_dump_json() == expected.model_dump_json()
    # A capped grant counts the delivery (test_broadcast_applies_to_each_connection_…).


BIZ = SigningKey.from_seed(b"\x11" * 32)
ANN = SigningKey.from_seed(b"\x22" * 32)
BOB = SigningKey.from_seed(b"\x33" * 32)
EVE = SigningKey.from_seed(b"\x66" * 32)


def answer(key: SigningKey, inv_id: str, mtype: MessageType) -> SignedObject:
    body = (
        AcceptBody(invitation=inv_id, label="x", kind="person")
        if mtype is M.ACCEPT
        else {"invitation": inv_id}
    )
    return sign(
        key,
        mtype,
        body,
        created_time=T0 + 1,
        cid=derive_cid(inv_id, key.did),
        seq=1,
        thid=inv_id,
    )


@pytest.mark.parametrize(
    ("to", "responder", "mtype", "refused"),
    [
        (None, EVE, M.ACCEPT, False),  # an open invitation: anyone may answer
        ([ANN], ANN, M.ACCEPT, False),
        ([ANN], ANN, M.DECLINE, False),
        ([ANN, BOB], BOB, M.ACCEPT, False),
        ([ANN], EVE, M.ACCEPT, True),
        ([ANN], EVE, M.DECLINE, True),
        ([ANN, BOB], EVE, M.ACCEPT, True),
        ([ANN], BOB, M.DECLINE, True),
    ],
)
def test_only_an_addressee_may_answer_an_addressed_invitation(
    to: list[SigningKey] | None, responder: SigningKey, mtype: MessageType, refused: bool
) -> None:
    inv = sign(
        BIZ,
        M.INVITATION,
        InvitationBody(label="R", kind="business"),
        created_time=T0,
        to=[k.did for k in to] if to else None,
    )
    reply = answer(responder, inv.id, mtype)
    log = [(inv.raw, T0), (reply.raw, T0 + 1)]
    if refused:
        with pytest.raises(errors.InvitationNotForYou):
            apply(apply(None, inv, T0), reply, T0 + 1)
        with pytest.raises(errors.InvitationNotForYou) as info:
            verify_log(log)
        assert info.value.extra["index"] == 1
    else:
        state = verify_log(log).state
        assert state.dids == (BIZ.did, responder.did)
        assert state.status == ("active" if mtype is M.ACCEPT else "declined")


def test_log_with_a_repeated_object_is_refused_as_replayed(conn: Conn) -> None:
    cast = sign(conn.business.key, M.MESSAGE, {"topic": "security"}, created_time=T0, payload="x")
    # apply keeps no memory of broadcast ids by design (spec §9): the log does.
    once = apply(conn.state, cast, T0)
    assert apply(once, cast, T0 + 1).heads == conn.state.heads
    chained = conn.send(conn.business, M.MESSAGE, msg("security"), T0 + 2)
    for log, index in [
        ([*conn.log, (cast.raw, T0), (cast.raw, T0 + 1)], len(conn.log) + 1),
        ([*conn.log, (cast.raw, T0 + 3), (dict(chained.raw), T0 + 4)], len(conn.log) + 1),
        ([*conn.log, (dict(conn.log[0][0]), T0 + 5)], len(conn.log)),
    ]:
        with pytest.raises(errors.Replayed) as info:
            verify_log(log)
        assert info.value.extra["index"] == index
