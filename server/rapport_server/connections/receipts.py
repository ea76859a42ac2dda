"""Consent receipts for a grant, derived from the connection's state and signed log.

Two shapes: the Kantara Initiative Consent Receipt 1.1 JSON, and an ISO/IEC TS 27560
consent record expressed with the W3C Data Privacy Vocabulary (DPV) as JSON-LD.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rapport_protocol import ConnectionState
from rapport_protocol.state import Grant

from ..tables import Connection, Party

# Grant status → DPV consent status (dpv:ConsentStatus instances).
DPV_STATUS = {
    "active": "dpv:ConsentGiven",
    "superseded": "dpv:ConsentInvalidated",
    "revoked": "dpv:ConsentWithdrawn",
    "ended_by_sever": "dpv:ConsentWithdrawn",
    "expired": "dpv:ConsentExpired",
}


def grant_status(grant: Grant, now: int) -> str:
    expires = grant.spec.expires_time
    if grant.status == "active" and expires is not None and now >= expires:
        return "expired"
    return grant.status


def _iso(ts: int | None) -> str | None:
    return (
        None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
    )


def kantara(
    grant: Grant,
    state: ConnectionState,
    row: Connection,
    grantor: Party,
    grantee: Party,
    log_object_id: str,
    public_url: str,
    now: int,
) -> dict[str, Any]:
    """Kantara Consent Receipt 1.1: the grantor is the PII principal who consents; the
    grantee is the controller that may now contact them."""
    spec = grant.spec
    purpose = spec.purpose or f"send {spec.scope}s about '{spec.topic}'"
    return {
        "version": "KI-CR-v1.1.0",
        "jurisdiction": "",
        "consentTimestamp": grant.issued_time,
        "collectionMethod": "Rapport signed grant object (did:key, Ed25519)",
        "consentReceiptID": grant.id,
        "publicKey": grantor.did,
        "language": "en",
        "piiPrincipalId": grantor.did,
        "piiControllers": [
            {
                "piiController": grantee.display_name,
                "contact": grantee.display_name,
                "address": "",
                "email": "",
                "phone": "",
                "piiControllerUrl": grantee.profile_url or "",
            }
        ],
        "policyUrl": f"{public_url.rstrip('/')}/v1/connections/{row.cid}/log",
        "services": [
            {
                "service": f"{spec.scope}:{spec.topic}",
                "purposes": [
                    {
                        "purpose": purpose,
                        "purposeCategory": [spec.scope],
                        "consentType": "EXPLICIT",
                        "piiCategory": ["contact"],
                        "primaryPurpose": True,
                        "termination": _termination(grant, now),
                        "thirdPartyDisclosure": False,
                        "thirdPartyName": "",
                    }
                ],
            }
        ],
        "sensitive": False,
        "spiCat": [],
        "rapport": {
            "cid": row.cid,
            "grant_status": grant_status(grant, now),
            "evidence_object_id": log_object_id,
            "constraints": spec.model_dump(exclude_none=True),
        },
    }


def _termination(grant: Grant, now: int) -> str:
    status = grant_status(grant, now)
    if status != "active":
        return f"ended ({status}) at {_iso(grant.ended_time or grant.spec.expires_time)}"
    if grant.spec.expires_time is not None:
        return f"until {_iso(grant.spec.expires_time)} or until revoked"
    return "until revoked by the principal"


def dpv(
    grant: Grant,
    state: ConnectionState,
    row: Connection,
    grantor: Party,
    grantee: Party,
    log_object_id: str,
    public_url: str,
    now: int,
) -> dict[str, Any]:
    """An ISO/IEC TS 27560-style consent record in DPV JSON-LD."""
    spec = grant.spec
    record: dict[str, Any] = {
        "@context": {
            "dpv": "https://w3id.org/dpv#",
            "dct": "http://purl.org/dc/terms/",
            "xsd": "http://www.w3.org/2001/XMLSchema#",
        },
        "@id": f"{public_url.rstrip('/')}/v1/connections/{row.cid}/grants/{grant.id}/receipt",
        "@type": "dpv:ConsentRecord",
        "dct:identifier": grant.id,
        "dpv:hasDataSubject": {"@id": grantor.did, "@type": "dpv:DataSubject"},
        "dpv:hasDataController": {
            "@id": grantee.did,
            "@type": "dpv:DataController",
            "dct:title": grantee.display_name,
        },
        "dpv:hasPurpose": {
            "@type": "dpv:Purpose",
            "dct:description": spec.purpose or f"{spec.scope}: {spec.topic}",
        },
        "dpv:hasConsentStatus": {"@id": DPV_STATUS[grant_status(grant, now)]},
        "dpv:hasIndicationMethod": "signed Rapport grant object",
        "dpv:hasProvisionTime": {"@value": _iso(grant.issued_time), "@type": "xsd:dateTime"},
        "dct:source": log_object_id,
    }
    if grant.ended_time is not None:
        record["dpv:hasWithdrawalTime"] = {
            "@value": _iso(grant.ended_time),
            "@type": "xsd:dateTime",
        }
    if spec.expires_time is not None:
        record["dpv:hasExpiryTime"] = {"@value": _iso(spec.expires_time), "@type": "xsd:dateTime"}
    return record
