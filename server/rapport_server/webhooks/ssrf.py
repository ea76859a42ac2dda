"""Server-side request forgery defences for webhook delivery.

Two gates, both required:

1. :func:`check_url` at registration: https only (plain http only in dev mode), no
   credentials in the URL, no ``localhost`` names, no ambiguous numeric host forms
   (``2130706433``, ``0177.0.0.1``, ``0x7f.1`` — which resolvers would read as IPv4), and an
   IP-literal host must itself be a public address.
2. :class:`PinnedBackend` at connection time: the host is resolved **once**, every resolved
   address is checked, and the connection goes to that checked address — so DNS
   rebinding between check and connect is impossible. TLS still verifies the certificate
   against the host name. Redirects are never followed (the worker's client says so).

``dev_mode`` admits loopback targets and http:// (for local development and tests only).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from typing import Any, Protocol

import httpcore
import httpx

from ..domain import DomainError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)


class UnsafeWebhookURL(DomainError):
    status = 422
    code = "webhook_url_unsafe"
    title = "Webhook URL refused"


class BlockedAddress(httpcore.ConnectError):
    """A resolved address is not allowed; no connection was attempted."""


def address_problem(addr: IPAddress, *, dev_mode: bool) -> str | None:
    """Why ``addr`` may not be a webhook target, or ``None`` when it may."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return address_problem(addr.ipv4_mapped, dev_mode=dev_mode)
        if addr in _NAT64:
            return address_problem(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF), dev_mode=dev_mode)
        if addr.sixtofour is not None or addr.teredo is not None:
            return "tunnelled address"
    if addr.is_loopback:
        return None if dev_mode else "loopback address"
    if addr.is_multicast:
        return "multicast address"
    if addr.is_unspecified:
        return "unspecified address"
    if addr.is_link_local:
        return "link-local address"
    if addr.is_private:
        return "private address"
    if not addr.is_global:  # CGNAT 100.64/10, reserved, documentation, benchmarking, …
        return "non-public address"
    return None


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_url(url: str, *, dev_mode: bool) -> str:
    """Validate a webhook URL for registration; returns its normalised form."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise UnsafeWebhookURL("not a valid absolute URL") from None
    if len(url) > 2048:
        raise UnsafeWebhookURL("the URL is longer than 2048 characters")
    if parsed.scheme != "https" and not (dev_mode and parsed.scheme == "http"):
        raise UnsafeWebhookURL("webhook URLs must use https")
    if parsed.userinfo:
        raise UnsafeWebhookURL("credentials in the URL are not allowed")
    if parsed.fragment:
        raise UnsafeWebhookURL("fragments are not allowed")
    host = parsed.host.lower()
    if not host:
        raise UnsafeWebhookURL("the URL has no host")
    bare = host.rstrip(".")
    literal = _ip_literal(bare)
    if literal is not None:
        problem = address_problem(literal, dev_mode=dev_mode)
        if problem:
            raise UnsafeWebhookURL(f"the host is a {problem}")
    else:
        if (bare == "localhost" or bare.endswith(".localhost")) and not dev_mode:
            raise UnsafeWebhookURL("the host is a loopback name")
        labels = bare.split(".")
        if all(_NUMERIC_LABEL.match(label) for label in labels):
            # inet_aton would read these as IPv4 (decimal, octal, hex, short forms).
            raise UnsafeWebhookURL("ambiguous numeric host; write a dotted-quad IPv4 address")
        if "." not in bare and not dev_mode:
            raise UnsafeWebhookURL("the host must be a fully qualified domain name")
    return str(parsed)


class Resolver(Protocol):
    """Name resolution, injectable for tests."""

    async def resolve(self, host: str, port: int) -> list[str]: ...


class SystemResolver:
    """The operating system's resolver (``getaddrinfo``)."""

    async def resolve(self, host: str, port: int) -> list[str]:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Resolve once, check every address, connect to the checked one."""

    def __init__(
        self,
        resolver: Resolver,
        *,
        dev_mode: bool,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._resolver = resolver
        self._dev_mode = dev_mode
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        literal = _ip_literal(host)
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = await asyncio.wait_for(self._resolver.resolve(host, port), timeout)
            except (OSError, TimeoutError) as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            parsed = _ip_literal(address)
            problem = (
                "unparsable address"
                if parsed is None
                else address_problem(parsed, dev_mode=self._dev_mode)
            )
            if problem:
                raise BlockedAddress(f"{host} resolves to a {problem}")
        return await self._inner.connect_tcp(
            addresses[0], port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport whose connections go through :class:`PinnedBackend`.

    Environment proxies are ignored (a proxy would resolve the name itself).
    """

    def __init__(self, backend: PinnedBackend, *, max_connections: int = 64) -> None:
        super().__init__(trust_env=False, retries=0)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=max_connections,
            max_keepalive_connections=max_connections // 4 or 1,
            keepalive_expiry=30.0,
            http1=True,
            http2=False,
            network_backend=backend,
        )
