"""Rapport protocol core, sans-I/O.

Identities (``did:key``), strict JSON, RFC 8785 canonicalisation, signed objects, the
connection / grant / mute / favour state machines and the delivery decision. Nothing in
this package opens a socket, touches a database or reads a clock: time is an argument.
"""

from __future__ import annotations

from . import errors
from .decision import Allowed, DeliveryDecision, Refused, decide
from .envelope import SignedObject, parse, sign, verify
from .errors import ProtocolError
from .identity import SigningKey, VerifyKey, parse_did
from .log import LogEntry, verify_log
from .state import ConnectionState, apply, derive_cid
from .types import MessageType

PROTOCOL_VERSION = "1.0"
__version__ = "0.1.0"

__all__ = [
    "PROTOCOL_VERSION",
    "Allowed",
    "ConnectionState",
    "DeliveryDecision",
    "LogEntry",
    "MessageType",
    "ProtocolError",
    "Refused",
    "SignedObject",
    "SigningKey",
    "VerifyKey",
    "apply",
    "decide",
    "derive_cid",
    "errors",
    "parse",
    "parse_did",
    "sign",
    "verify",
    "verify_log",
]
