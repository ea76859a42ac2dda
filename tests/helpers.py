"""Test-side actors that speak the REST API directly (httpx + rapport_protocol).

These deliberately do not use the SDK: server tests check the HTTP contract itself.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import OKPKey
from rapport_protocol import MessageType, SigningKey, sign
from rapport_protocol.canonical import b64url


class FakeClock:
    """A clock tests move forward; the server and the actors share it."""

    def __init__(self, start: int | None = None) -> None:
        self.now = start if start is not None else int(time.time())

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: int) -> None:
        self.now += seconds


def assertion(
    key: SigningKey,
    audience: str,
    now: int,
    *,
    jti: str | None = None,
    alg: str = "Ed25519",
    lifetime: int = 120,
    **overrides: Any,
) -> str:
    """A client assertion JWT, as the SDK would build it."""
    jwk = OKPKey.import_key(
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "d": b64url(key.seed),
            "x": b64url(key.verify_key.public_key),
        }
    )
    claims = {
        "iss": key.did,
        "sub": key.did,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime,
        "jti": jti or secrets.token_urlsafe(16),
    }
    claims.update(overrides)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, claims, jwk, algorithms=[alg])


@dataclass
class Actor:
    """A party: its key, its HTTP client, its token and its hash chains."""

    http: httpx.AsyncClient
    clock: FakeClock
    base_url: str
    key: SigningKey = field(default_factory=SigningKey.generate)
    party_id: str = ""
    kind: str = "person"
    token: str = ""
    chains: dict[str, tuple[int, str | None]] = field(default_factory=dict)

    @property
    def did(self) -> str:
        return self.key.did

    async def register(self, kind: str, name: str) -> dict[str, Any]:
        self.kind = kind
        r = await self.http.post(
            f"{self.base_url}/v1/parties",
            json={
                "kind": kind,
                "display_name": name,
                "assertion": assertion(self.key, f"{self.base_url}/v1/parties", self.clock()),
            },
        )
        assert r.status_code == 201, r.text
        self.party_id = r.json()["id"]
        await self.login()
        return dict(r.json())

    async def login(self) -> None:
        r = await self.http.post(
            f"{self.base_url}/v1/oauth/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion(self.key, f"{self.base_url}/v1/oauth/token", self.clock()),
            },
        )
        assert r.status_code == 200, r.text
        self.token = r.json()["access_token"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.http.get(self.base_url + path, headers=self.headers, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        headers = {**self.headers, **kw.pop("headers", {})}
        return await self.http.post(self.base_url + path, json=json, headers=headers, **kw)

    async def put(self, path: str, json: Any = None) -> httpx.Response:
        return await self.http.put(self.base_url + path, json=json, headers=self.headers)

    def sign(
        self,
        mtype: MessageType,
        body: Any,
        cid: str | None = None,
        *,
        advance: bool = True,
        **headers: Any,
    ) -> dict[str, Any]:
        """Sign the next object of this actor's chain in ``cid`` (or an unchained one)."""
        seq, prev = self.chains.get(cid, (0, None)) if cid else (0, None)
        if cid is not None:
            headers.update(cid=cid, seq=seq + 1, prev=prev)
        obj = sign(self.key, mtype, body, created_time=self.clock(), **headers)
        if cid is not None and advance:
            self.chains[cid] = (obj.seq, obj.id)
        return obj.to_json()

    def rewind(self, cid: str, seq: int, prev: str | None) -> None:
        self.chains[cid] = (seq, prev)

    async def act(
        self, method: str, path: str, mtype: MessageType, body: Any, cid: str | None, **headers: Any
    ) -> httpx.Response:
        """Sign and send; when refused, the chain is not advanced."""
        before = self.chains.get(cid) if cid else None
        obj = self.sign(mtype, body, cid, **headers)
        call = self.put if method == "PUT" else self.post
        r = await call(path, {"object": obj})
        if r.status_code >= 400 and cid is not None:
            if before is None:
                self.chains.pop(cid, None)
            else:
                self.chains[cid] = before
        return r

    async def invite(
        self,
        *,
        offered: list[dict[str, Any]] | None = None,
        requested: list[dict[str, Any]] | None = None,
        multi_use: bool = False,
        to: list[str] | None = None,
        expires_in: int | None = None,
        label: str = "x",
    ) -> httpx.Response:
        body = {
            "label": label,
            "kind": self.kind,
            "multi_use": multi_use,
            "offered": offered or [],
            "requested": requested or [],
            "nonce": secrets.token_urlsafe(12),
        }
        extra: dict[str, Any] = {}
        if to:
            extra["to"] = to
        if expires_in:
            extra["expires_time"] = self.clock() + expires_in
        obj = self.sign(MessageType.INVITATION, body, None, **extra)
        return await self.post("/v1/invitations", {"object": obj})

    async def accept(
        self, invitation_id: str, grants: list[dict[str, Any]] | None = None, label: str = "y"
    ) -> httpx.Response:
        from rapport_protocol import derive_cid

        cid = derive_cid(invitation_id, self.did)
        body = {
            "invitation": invitation_id,
            "label": label,
            "kind": self.kind,
            "grants": grants or [],
        }
        return await self.act(
            "POST",
            f"/v1/invitations/{invitation_id}/accept",
            MessageType.ACCEPT,
            body,
            cid,
            thid=invitation_id,
        )

    async def send(self, cid: str, topic: str, content: str = "hello", **kw: Any) -> httpx.Response:
        return await self.act(
            "POST",
            f"/v1/connections/{cid}/messages",
            MessageType.MESSAGE,
            {"topic": topic},
            cid,
            payload=content,
            **kw,
        )


async def actors(base: str, clock: FakeClock, http: httpx.AsyncClient, n: int) -> list[Actor]:
    """``n`` registered actors: the first a business, the others people."""
    out = []
    for i in range(n):
        a = Actor(http=http, clock=clock, base_url=base)
        await a.register("business" if i == 0 else "person", f"P{i}")
        out.append(a)
    return out


async def connect(
    business: Actor,
    person: Actor,
    *,
    person_grants: list[dict[str, Any]],
    business_grants: list[dict[str, Any]] | None = None,
) -> str:
    """The business invites; the person accepts with ``person_grants``. Returns the cid."""
    r = await business.invite(offered=business_grants or [], requested=person_grants)
    assert r.status_code == 201, r.text
    r = await person.accept(r.json()["id"], person_grants)
    assert r.status_code == 201, r.text
    return str(r.json()["cid"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def live_server(
    database_url: str,
    clock: FakeClock,
    *,
    port: int | None = None,
    public_url: str | None = None,
    prepare: Callable[[Any], None] | None = None,
    **settings: Any,
) -> AsyncIterator[str]:
    """Run the app under uvicorn on 127.0.0.1 in a thread; yield its base URL.

    ``port`` lets a restarted instance keep its URL (tokens stay valid); ``public_url`` is
    shared by instances behind one load balancer; ``prepare`` may adjust the app before it
    starts. Leaving waits for the app's lifespan shutdown (batcher drained, pool closed),
    not for the thread, which anyio's idle worker threads keep alive for a while.
    """
    import uvicorn
    from rapport_server.app import create_app
    from rapport_server.config import Settings

    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_app(
        Settings(
            database_url=database_url,
            public_url=public_url or base,
            migrate_on_start=True,
            **settings,
        ),
        clock=clock,
    )
    if prepare is not None:
        prepare(app)
    stopped = threading.Event()

    async def watched(scope: Any, receive: Any, send: Any) -> None:
        async def spy(message: Any) -> None:
            if message.get("type") == "lifespan.shutdown.complete":
                stopped.set()
            await send(message)

        await app(scope, receive, spy if scope["type"] == "lifespan" else send)

    server = uvicorn.Server(
        uvicorn.Config(watched, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started, "server did not start"
        yield base
    finally:
        server.should_exit = True
        await asyncio.to_thread(stopped.wait, 15)
