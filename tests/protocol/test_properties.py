"""Properties: random event sequences never reach an illegal state, and ``decide`` agrees
with a deliberately naive reference model that recomputes everything from history."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapport_protocol import decide, errors, sign
from rapport_protocol.decision import Allowed, Refused
from rapport_protocol.envelope import SignedObject
from rapport_protocol.favours import FAVOUR_OPEN
from rapport_protocol.state import ConnectionState, apply_broadcast, apply_decided
from rapport_protocol.types import MessageType

from .conftest import T0, Conn, connect

M = MessageType
TOPICS = ("a", "b", "security")
PERIODS = {"PT1M": 60, "PT1H": 3600}


@dataclass
class Reference:
    """What a reader of the spec would compute by hand, from the full history."""

    severed: bool = False
    grants: dict[str, tuple[int | None, int, int | None]] = field(default_factory=dict)
    """topic -> (rate count, period seconds, expires) granted by the person to the business."""
    recorded: dict[str, list[int]] = field(default_factory=dict)
    """topic -> delivery times the grant's usage record holds (spec §13: only while capped,
    pruned to the window and to the latest ``count``; inherited by amendments)."""
    mute: tuple[int | None, tuple[str, ...], str] | None = None
    sent: list[tuple[str, int]] = field(default_factory=list)

    def decide(self, topic: str, now: int) -> str:
        if self.severed:
            return "connection_severed"
        if topic not in self.grants:
            return "grant_missing"
        count, period, expires = self.grants[topic]
        if expires is not None and now >= expires:
            return "grant_expired"
        if self.mute is not None:
            until, exempt, mode = self.mute
            if (until is None or now < until) and topic not in exempt and mode == "reject":
                return "muted"
        if count is not None:
            used = [t for t in self.recorded.get(topic, []) if t > now - period]
            if len(used) >= count:
                return "rate_exceeded"
        return "allowed"

    def record(self, topic: str, now: int) -> None:
        self.sent.append((topic, now))
        count, period, _ = self.grants[topic]
        if count is not None:
            kept = [t for t in self.recorded.get(topic, []) if t > now - period]
            self.recorded[topic] = [*kept, now][-count:]


events = st.lists(
    st.one_of(
        st.tuples(st.just("wait"), st.integers(1, 4000)),
        st.tuples(st.just("send"), st.sampled_from(TOPICS)),
        st.tuples(
            st.just("grant"),
            st.sampled_from(TOPICS),
            st.one_of(st.none(), st.integers(1, 3)),
            st.sampled_from(sorted(PERIODS)),
            st.one_of(st.none(), st.integers(1, 5000)),
        ),
        st.tuples(st.just("revoke"), st.sampled_from(TOPICS)),
        st.tuples(
            st.just("mute"),
            st.one_of(st.none(), st.integers(1, 5000)),
            st.sampled_from([(), ("security",)]),
            st.sampled_from(["hold", "reject"]),
        ),
        st.tuples(st.just("unmute")),
        st.tuples(st.just("sever")),
        st.tuples(st.just("ask")),
    ),
    min_size=8,
    max_size=60,
)


def check_invariants(state: ConnectionState, now: int) -> None:
    assert state.status in ("active", "severed")
    for key, gid in state.active_grants.items():
        grant = state.grants[gid]
        assert grant.status == "active"
        assert key == f"{grant.grantor}|{grant.spec.scope}|{grant.spec.topic}"
        if grant.spec.rate is not None:
            assert len(grant.usage) <= grant.spec.rate.count
    assert len(state.active_grants) == sum(g.status == "active" for g in state.grants.values())
    if state.status == "severed":
        assert not state.active_grants and not state.mutes
        assert all(f.status_at(now) not in FAVOUR_OPEN for f in state.favours.values())
        assert state.severance is not None
    assert state.heads[0].seq >= 0 and state.heads[1].seq >= 1


def check_broadcast_agrees_with_apply(
    state: ConnectionState, cast: SignedObject, probe: SignedObject, now: int
) -> None:
    """``apply_broadcast`` is ``apply_decided`` with the refusal returned, its ``None``
    state means exactly "only ``last_time`` moves", and it counts a delivery as a chained
    message (``probe``, same topic, admitted through ``_admit``) does."""
    verdict, new = apply_broadcast(state, cast, now)
    assert verdict == decide(state, cast, now)
    if not isinstance(verdict, Allowed):
        assert new is None
        with pytest.raises(errors.ProtocolError) as info:
            apply_decided(state, cast, now)
        assert info.value.code == verdict.code
        return
    full, admitted = apply_decided(state, cast, now)
    assert admitted == verdict
    moved = state.model_copy(update={"last_time": max(state.last_time, now)})
    assert full == (moved if new is None else new)
    assert full.grants == apply_decided(state, probe, now)[0].grants
    assert (new is None) == (state.grants[verdict.grant_id].spec.rate is None)


@settings(max_examples=400, deadline=None)
@given(events)
def test_random_sequences_stay_legal_and_decide_matches_reference(seq: list[tuple]) -> None:  # type: ignore[type-arg]
    run(seq)


# One topic, its cap amended often and in every direction (narrower, wider, none): the
# record an amendment inherits, which the mix above reaches only rarely.
amendments = st.lists(
    st.one_of(
        st.tuples(st.just("wait"), st.integers(1, 4000)),
        st.tuples(st.just("send"), st.just("a")),
        st.tuples(
            st.just("grant"),
            st.just("a"),
            st.one_of(st.none(), st.integers(1, 3)),
            st.sampled_from(sorted(PERIODS)),
            st.none(),
        ),
    ),
    min_size=8,
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(amendments)
def test_amended_caps_count_what_the_reference_counts(seq: list[tuple]) -> None:  # type: ignore[type-arg]
    run(seq)


def run(seq: list[tuple]) -> None:  # type: ignore[type-arg]
    """Play ``seq`` against the protocol and the reference; they must agree throughout."""
    conn: Conn = connect(business_grants=[])
    ref = Reference()
    now = T0
    for event in seq:
        kind = event[0]
        try:
            if kind == "wait":
                now += event[1]
            elif kind == "send":
                topic = event[1]
                probe = conn.business.make(
                    M.MESSAGE, {"topic": topic, "content": "x"}, cid=conn.cid, at=now
                )
                verdict = decide(conn.state, probe, now)
                cast = sign(
                    conn.business.key, M.MESSAGE, {"topic": topic}, created_time=now, payload="x"
                )
                check_broadcast_agrees_with_apply(conn.state, cast, probe, now)
                expected = ref.decide(topic, now)
                got = "allowed" if isinstance(verdict, Allowed) else verdict.code
                assert got == expected, (got, expected)
                if isinstance(verdict, Allowed):
                    conn.send(conn.business, M.MESSAGE, {"topic": topic, "content": "x"}, now)
                    ref.record(topic, now)
                else:
                    assert isinstance(verdict, Refused)
            elif kind == "grant":
                _, topic, count, period, expires_in = event
                spec: dict[str, object] = {"scope": "message", "topic": topic}
                if count is not None:
                    spec["rate"] = {"count": count, "period": period}
                if expires_in is not None:
                    spec["expires_time"] = now + expires_in
                current = conn.state.grant_for(1, "message", topic)
                exact = current is not None and current.spec.topic == topic
                if exact and current is not None:
                    conn.send(
                        conn.person, M.GRANT_AMEND, {"replaces": current.id, "grant": spec}, now
                    )
                    # Inherited: what is still inside the old window, the latest `count`
                    # of the new cap's; nothing from or into an uncapped grant.
                    old_count, old_period, _ = ref.grants[topic]
                    kept = [t for t in ref.recorded.get(topic, []) if t > now - old_period]
                    capped = count is not None and old_count is not None
                    ref.recorded[topic] = kept[-count:] if capped else []
                else:
                    conn.send(conn.person, M.GRANT_ISSUE, {"grant": spec}, now)
                    ref.recorded[topic] = []
                ref.grants[topic] = (
                    count,
                    PERIODS[period],
                    None if expires_in is None else now + expires_in,
                )
            elif kind == "revoke":
                current = conn.state.grant_for(1, "message", event[1])
                if current is not None:
                    conn.send(conn.person, M.GRANT_REVOKE, {"grant_id": current.id}, now)
                    del ref.grants[event[1]]
            elif kind == "mute":
                _, until_in, exempt, mode = event
                body: dict[str, object] = {"exempt_topics": list(exempt), "mode": mode}
                if until_in is not None:
                    body["until"] = now + until_in
                conn.send(conn.person, M.MUTE, body, now)
                ref.mute = (None if until_in is None else now + until_in, exempt, mode)
            elif kind == "unmute":
                conn.send(conn.person, M.UNMUTE, {}, now)
                ref.mute = None
            elif kind == "sever":
                conn.send(conn.person, M.SEVER, {"data": "delete"}, now)
                ref.severed = True
            elif kind == "ask":
                conn.send(conn.person, M.FAVOUR_REQUEST, {"kind": "x", "description": "d"}, now)
        except errors.ProtocolError as exc:
            # Refusals must be the ones the rules predict, never anything else.
            if kind == "unmute":
                assert isinstance(exc, errors.MuteNotFound | errors.ConnectionSevered)
            elif kind == "ask":
                assert isinstance(exc, errors.GrantMissing | errors.ConnectionSevered)
            else:
                assert ref.severed and isinstance(exc, errors.ConnectionSevered), exc
        check_invariants(conn.state, now)
