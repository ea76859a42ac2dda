"""Client assertions (RFC 7523, EdDSA) in, short-lived key-bound access tokens out.

JOSE is handled by ``joserfc`` (the Authlib project's JOSE library; ``authlib.jose`` is
deprecated in its favour). Only Ed25519 signatures are accepted from clients — ``alg:
none``, HMAC and every other algorithm are refused before any key is used — and the
verification key always comes from the assertion's own ``did:key``, never from a header.
"""

from __future__ import annotations

import secrets
import warnings
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey, OKPKey
from joserfc.jws import extract_compact
from rapport_protocol import errors as protocol_errors
from rapport_protocol.canonical import b64url
from rapport_protocol.identity import did_of_kid, parse_did

from ..domain import DomainError

CLIENT_ALGORITHMS = ["Ed25519", "EdDSA"]  # RFC 9864 name first; EdDSA for older clients
ACCESS_ALGORITHM = "HS256"
MAX_ASSERTION_BYTES = 4096


class InvalidGrant(DomainError):
    status, code, title = 400, "invalid_grant", "The assertion is not acceptable"


class InvalidToken(DomainError):
    status, code, title = 401, "invalid_token", "The access token is not valid"


@dataclass(frozen=True, slots=True)
class Assertion:
    did: str
    jti: str
    expires_at: int


def verify_assertion(token: str, *, audience: str, now: int, max_age: int, skew: int) -> Assertion:
    """Check a client's JWT assertion and return who it proves to be.

    Refuses (``invalid_grant``): anything but a compact JWS signed with Ed25519 by the key of
    ``iss`` (= ``sub`` = a did:key, ``kid`` = that DID's key id), a wrong ``aud``, an
    expired or not-yet-valid token, one living longer than ``max_age``, or one without
    ``jti``. Replay of the ``jti`` is the caller's check (it needs the database).
    """
    if len(token) > MAX_ASSERTION_BYTES:
        raise InvalidGrant("assertion too large")
    try:
        compact = extract_compact(token.encode("ascii"))
        header = compact.protected
    except (JoseError, ValueError, UnicodeError) as exc:
        raise InvalidGrant("assertion is not a compact JWS") from exc
    if header.get("alg") not in CLIENT_ALGORITHMS:
        raise InvalidGrant("only Ed25519 (EdDSA) assertions are accepted")
    kid = header.get("kid")
    try:
        did = did_of_kid(kid) if isinstance(kid, str) else ""
        verify_key = parse_did(did)
    except protocol_errors.ProtocolError as exc:
        raise InvalidGrant("kid must be the did:key key id of the signer") from exc
    key = OKPKey.import_key({"kty": "OKP", "crv": "Ed25519", "x": b64url(verify_key.public_key)})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # joserfc warns that "EdDSA" is deprecated
            decoded = jwt.decode(token, key, algorithms=CLIENT_ALGORITHMS)
    except (JoseError, ValueError) as exc:
        raise InvalidGrant("assertion signature does not verify") from exc
    claims = decoded.claims
    _check_claims(claims, did=did, audience=audience, now=now, max_age=max_age, skew=skew)
    return Assertion(did=did, jti=str(claims["jti"]), expires_at=int(claims["exp"]))


def _check_claims(
    claims: dict[str, Any], *, did: str, audience: str, now: int, max_age: int, skew: int
) -> None:
    if claims.get("iss") != did or claims.get("sub") != did:
        raise InvalidGrant("iss and sub must be the signer's DID")
    aud = claims.get("aud")
    if aud != audience and not (isinstance(aud, list) and audience in aud):
        raise InvalidGrant(f"aud must be {audience}")
    exp, iat = claims.get("exp"), claims.get("iat")
    if type(exp) is not int or type(iat) is not int:
        raise InvalidGrant("exp and iat are required integers")
    if exp <= now - skew:
        raise InvalidGrant("assertion expired")
    if iat > now + skew:
        raise InvalidGrant("assertion issued in the future")
    if exp - iat > max_age:
        raise InvalidGrant(f"assertion lifetime over {max_age} s")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 8 <= len(jti) <= 128:
        raise InvalidGrant("jti is required (8 to 128 characters)")


class AccessTokens:
    """Issue and check access tokens: HS256 JWTs bound to the party and its current key."""

    MAX_CHECKED = 100_000

    def __init__(self, secret: str, issuer: str, ttl: int) -> None:
        self._key = OctKey.import_key(secret.encode("utf-8"))
        self._issuer = issuer
        self.ttl = ttl
        # Tokens whose signature and claims were verified: token → (party, did, exp).
        # Decoding with joserfc was ~0.2 ms of every request (bench/PROFILE.md); a token
        # is immutable and the key is fixed, so only ``exp`` needs checking again.
        self._checked: dict[str, tuple[str, str, int]] = {}

    def issue(self, party_id: str, did: str, now: int) -> str:
        claims = {
            "iss": self._issuer,
            "sub": party_id,
            "did": did,
            "iat": now,
            "exp": now + self.ttl,
            "jti": secrets.token_urlsafe(12),
        }
        return jwt.encode({"alg": ACCESS_ALGORITHM, "typ": "at+jwt"}, claims, self._key)

    def check(self, token: str, now: int) -> tuple[str, str]:
        """``(party_id, did)`` of a valid token; raises :class:`InvalidToken`."""
        checked = self._checked.get(token)
        if checked is not None:
            if checked[2] <= now:
                raise InvalidToken("token expired", code="token_expired")
            return checked[0], checked[1]
        try:
            decoded = jwt.decode(token, self._key, algorithms=[ACCESS_ALGORITHM])
        except (JoseError, ValueError) as exc:
            raise InvalidToken("malformed or badly signed token") from exc
        claims = decoded.claims
        if decoded.header.get("typ") != "at+jwt" or claims.get("iss") != self._issuer:
            raise InvalidToken("not an access token of this server")
        exp = claims.get("exp")
        if type(exp) is not int or exp <= now:
            raise InvalidToken("token expired", code="token_expired")
        sub, did = claims.get("sub"), claims.get("did")
        if not isinstance(sub, str) or not isinstance(did, str):
            raise InvalidToken("token lacks its subject")
        if len(self._checked) >= self.MAX_CHECKED:
            self._checked.clear()
        self._checked[token] = (sub, did, exp)
        return sub, did
