"""The favour state machine and the reciprocity ledger.

A favour is asked by its *requester* of the other party, its *doer*. Each step is a signed
object naming the favour (the id of its request). :data:`FAVOUR_TRANSITIONS` is the whole
machine: ``(status, step) -> (who may take it, new status)``. ``expired`` is reached by
time alone: a favour still ``requested`` when its request's ``expires_time`` passes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from . import errors
from .envelope import SignedObject
from .types import FavourRequestBody, FavourStepBody, MessageType

FavourStatus = Literal[
    "requested",
    "accepted",
    "declined",
    "withdrawn",
    "expired",
    "fulfilled",
    "acknowledged",
    "cancelled",
]
Actor = Literal["requester", "doer"]
T = MessageType

FAVOUR_TRANSITIONS: dict[tuple[str, MessageType], tuple[Actor, FavourStatus]] = {
    ("requested", T.FAVOUR_ACCEPT): ("doer", "accepted"),
    ("requested", T.FAVOUR_DECLINE): ("doer", "declined"),
    ("requested", T.FAVOUR_WITHDRAW): ("requester", "withdrawn"),
    ("accepted", T.FAVOUR_WITHDRAW): ("requester", "withdrawn"),
    ("accepted", T.FAVOUR_FULFIL): ("doer", "fulfilled"),
    ("fulfilled", T.FAVOUR_ACKNOWLEDGE): ("requester", "acknowledged"),
}
FAVOUR_OPEN = frozenset({"requested", "accepted"})
FAVOUR_DONE = frozenset({"fulfilled", "acknowledged"})


class Favour(BaseModel):
    """One favour and where it stands."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    requester: Literal[0, 1]
    kind: str
    description: str
    status: FavourStatus
    requested_time: int
    expires_time: int | None = None
    due_time: int | None = None
    return_of: str | None = None
    updated_time: int

    @property
    def doer(self) -> Literal[0, 1]:
        return 1 if self.requester == 0 else 0

    def status_at(self, now: int) -> FavourStatus:
        """The status, with ``expired`` derived for a request left unanswered too long."""
        expires = self.expires_time
        if self.status == "requested" and expires is not None and now >= expires:
            return "expired"
        return self.status


def new_favour(
    favours: dict[str, Favour], requester: Literal[0, 1], obj: SignedObject, now: int
) -> Favour:
    """The favour opened by request ``obj``; checks ``return_of``."""
    body = obj.body
    assert isinstance(body, FavourRequestBody)
    if body.return_of is not None:
        earlier = favours.get(body.return_of)
        # A return answers a favour this requester did for the other party.
        if earlier is None or earlier.requester == requester or earlier.status not in FAVOUR_DONE:
            raise errors.FavourReturnInvalid(
                "return_of must name a fulfilled favour that the requester did for the other party"
            )
        if any(f.return_of == body.return_of for f in favours.values()):
            raise errors.FavourReturnInvalid("that favour has already been returned")
    return Favour(
        id=obj.id,
        requester=requester,
        kind=body.kind,
        description=body.description,
        status="requested",
        requested_time=now,
        expires_time=obj.expires_time,
        due_time=body.due_time,
        return_of=body.return_of,
        updated_time=now,
    )


def apply_favour_step(
    favours: dict[str, Favour], role: Literal[0, 1], obj: SignedObject, now: int
) -> Favour:
    """The favour after step ``obj`` by ``role``, or a typed error."""
    body = obj.body
    assert isinstance(body, FavourStepBody)
    favour = favours.get(body.favour)
    if favour is None:
        raise errors.FavourNotFound("no such favour in this connection")
    status = favour.status_at(now)
    move = FAVOUR_TRANSITIONS.get((status, obj.type))
    if move is None:
        raise errors.FavourStateError(f"cannot {obj.type.value} a favour that is {status}")
    actor, new_status = move
    expected = favour.requester if actor == "requester" else favour.doer
    if role != expected:
        raise errors.FavourStateError(f"only the {actor} may {obj.type.value}")
    return favour.model_copy(update={"status": new_status, "updated_time": now})


def cancel_open(favours: dict[str, Favour], now: int) -> dict[str, Favour]:
    """Every open favour cancelled (used when a connection is severed)."""
    return {
        fid: f.model_copy(update={"status": "cancelled", "updated_time": now})
        if f.status_at(now) in FAVOUR_OPEN
        else f
        for fid, f in favours.items()
    }


class LedgerSide(BaseModel):
    """What one party has given and received in a connection."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    given: int = 0
    received: int = 0
    returned: int = 0
    """Favours this party did that returned one done for it."""
    open_asks: int = 0


def ledger(favours: dict[str, Favour], now: int) -> tuple[LedgerSide, LedgerSide]:
    """The reciprocity ledger for roles 0 and 1, derived from the favours alone.

    A favour counts once it is fulfilled (acknowledged or not): the doer *gave*, the
    requester *received*.
    """
    given = [0, 0]
    received = [0, 0]
    returned = [0, 0]
    open_asks = [0, 0]
    for favour in favours.values():
        status = favour.status_at(now)
        if status in FAVOUR_DONE:
            given[favour.doer] += 1
            received[favour.requester] += 1
            if favour.return_of is not None:
                returned[favour.doer] += 1
        elif status in FAVOUR_OPEN:
            open_asks[favour.requester] += 1
    return (
        LedgerSide(
            given=given[0], received=received[0], returned=returned[0], open_asks=open_asks[0]
        ),
        LedgerSide(
            given=given[1], received=received[1], returned=returned[1], open_asks=open_asks[1]
        ),
    )
