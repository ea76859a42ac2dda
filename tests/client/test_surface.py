"""The SDK's public surface: both clients alike, documented, with explicit timeouts."""

from __future__ import annotations

import inspect

import httpx
import pytest
import rapport_client
from rapport_client import AsyncClient, Client, RetryPolicy
from rapport_protocol import SigningKey

NAMESPACES = ["parties", "invitations", "connections", "grants", "mutes", "favours",
              "messages", "account", "events", "webhook_endpoints"]  # fmt: skip


def public_methods(obj: object) -> dict[str, object]:
    return {
        name: getattr(obj, name)
        for name in dir(obj)
        if not name.startswith("_") and callable(getattr(obj, name))
    }


def test_sync_and_async_clients_have_the_same_calls_with_the_same_signatures() -> None:
    sync, asyn = Client("http://x"), AsyncClient("http://x")
    for namespace in NAMESPACES:
        s, a = public_methods(getattr(sync, namespace)), public_methods(getattr(asyn, namespace))
        assert s.keys() == a.keys(), namespace
        assert s, namespace
        for name in s:
            same = inspect.signature(s[name]).parameters == inspect.signature(a[name]).parameters
            assert same, (namespace, name)


def test_every_public_call_is_documented() -> None:
    client = Client("http://x")
    for namespace in NAMESPACES:
        for name, method in public_methods(getattr(client, namespace)).items():
            assert (method.__doc__ or "").strip(), f"{namespace}.{name}"
    for name in rapport_client.__all__:
        obj = getattr(rapport_client, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert (obj.__doc__ or "").strip(), name


@pytest.mark.parametrize("timeout", [2.5, httpx.Timeout(7.0, connect=1.0)])
def test_timeouts_are_explicit_and_configurable(timeout: float | httpx.Timeout) -> None:
    seen: list[dict[str, float | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        if request.url.path == "/v1/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 900})
        return httpx.Response(200, json={"id": "p", "kind": "person", "did": "d",
                                         "display_name": "A", "created_time": 1})  # fmt: skip

    client = Client("http://x", key=SigningKey.generate(), transport=httpx.MockTransport(handler),
                    timeout=timeout)  # fmt: skip
    client.parties.me()
    expected = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
    assert seen[-1] == expected.as_dict()


def test_default_timeout_is_not_unbounded() -> None:
    assert all(v is not None for v in rapport_client.DEFAULT_TIMEOUT.as_dict().values())


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried_and_others_not(status: int) -> None:
    import random

    policy = RetryPolicy()
    rng = random.Random(0)
    from rapport_client._core import ApiResponse

    assert policy.delay_for(0, ApiResponse(status, {}, None), rng) is not None
    assert policy.delay_for(policy.max_retries, ApiResponse(status, {}, None), rng) is None
    for final in (400, 401, 403, 404, 409, 410, 422):
        assert policy.delay_for(0, ApiResponse(final, {}, None), rng) is None


def test_backoff_grows_exponentially_with_full_jitter_and_a_cap() -> None:
    import random

    policy = RetryPolicy(base=1, max_backoff=5)
    rng = random.Random(42)
    samples = {n: [policy.backoff(n, rng) for _ in range(300)] for n in range(5)}
    for n, values in samples.items():
        assert all(0 <= v <= min(5, 2**n) for v in values)
    assert max(samples[0]) < max(samples[2]) and max(samples[4]) > 4


def test_retry_after_http_date_is_understood() -> None:
    from rapport_client._core import retry_after_seconds

    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert retry_after_seconds("5") == 5.0 and retry_after_seconds("soon") is None
