"""Family 3 — malformed, truncated, duplicated-key, wrong-type, over-deep, oversize and
wrong-signature objects, through ``rapport_protocol`` and through the HTTP API.

Oracle: an object may be accepted only if it is the signed object itself (same RFC 8785
bytes); anything else must be refused with a typed ``ProtocolError`` (protocol) or a 4xx
problem+json with a ``code`` (HTTP). A crash (another exception) or a 5xx counts as a
failure. Published vector suites (RFC 8032, Wycheproof, CCTV, RFC 8785) are run in
``tests/spec``; the atheris harness for the strict parser is ``fuzz/strict_json_fuzz.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from rapport_protocol import MessageType, SigningKey, envelope, errors, strict_json

from tests.helpers import Actor, FakeClock, connect
from tests.reliability.conftest import profile, record
from tests.reliability.mutations import mutations, same_object

M = MessageType
SETTINGS = {
    "deadline": None,
    "database": None,
    "derandomize": True,
    "phases": [Phase.explicit, Phase.generate],
    "suppress_health_check": list(HealthCheck),
}


def _valid_message(key: SigningKey, now: int) -> dict[str, Any]:
    return envelope.sign(
        key,
        M.MESSAGE,
        {"topic": "news"},
        created_time=now,
        cid="0" * 32,
        seq=3,
        prev="a" * 64,
        payload="hello",
    ).to_json()


def test_protocol_refuses_every_damaged_object_with_a_typed_error() -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    now = 1_800_000_000
    original = _valid_message(key, now)
    tried: Counter[str] = Counter()
    wrongly_accepted: list[bytes] = []
    crashes: list[str] = []

    @settings(max_examples=profile(1500, 20000), **SETTINGS)
    @given(case=mutations(original, other))
    def run(case: tuple[str, bytes]) -> None:
        family, data = case
        tried[family] += 1
        try:
            parsed = envelope.parse(data, now=now)
        except errors.ProtocolError as exc:
            assert exc.code, exc
            return
        except Exception as exc:  # anything untyped is a crash
            crashes.append(f"{family}: {type(exc).__name__}: {exc}"[:200])
            return
        if not same_object(original, parsed.raw):
            wrongly_accepted.append(family.encode() + b" " + data[-300:])

    run()
    record(
        "envelope-fuzz/protocol",
        f"{sum(tried.values())} damaged objects ({dict(sorted(tried.items()))}), "
        f"{len(wrongly_accepted)} accepted wrongly, {len(crashes)} untyped errors",
    )
    assert not crashes, crashes[:5]
    assert not wrongly_accepted, wrongly_accepted[:3]


@settings(max_examples=profile(600, 10000), **SETTINGS)
@given(
    text=st.text(alphabet=st.sampled_from('{}[]":,-0123456789.eE \\ntruefalsnu\ud800'), max_size=60)
)
def test_strict_json_accepts_a_subset_of_json_with_equal_values(text: str) -> None:
    try:
        value = strict_json.loads(text)
    except errors.JsonError:
        return
    # Whatever the strict parser takes, the stdlib parser takes too, with the same value.
    assert json.loads(text) == value


async def test_http_refuses_every_damaged_object_without_a_server_error(
    business: Actor, person: Actor, clock: FakeClock
) -> None:
    cid = await connect(business, person, person_grants=[{"scope": "message", "topic": "news"}])
    other = SigningKey.generate()
    path = f"{business.base_url}/v1/connections/{cid}/messages"
    # The valid object is the next one in the chain, never sent as is: any 2xx is wrong
    # unless the damage left it intact.
    original = business.sign(M.MESSAGE, {"topic": "news"}, cid, payload="fuzz", advance=False)
    draws: list[tuple[str, bytes]] = []

    @settings(max_examples=profile(150, 1500), **SETTINGS)
    @given(case=mutations(original, other))
    def collect(case: tuple[str, bytes]) -> None:
        draws.append(case)

    collect()
    tried: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    wrong: list[str] = []
    sem = asyncio.Semaphore(4)

    async def post(family: str, data: bytes) -> None:
        body = b'{"object": ' + data + b"}"
        async with sem:
            r = await business.http.post(
                path,
                content=body,
                headers={**business.headers, "content-type": "application/json"},
            )
        tried[family] += 1
        statuses[r.status_code] += 1
        if r.status_code >= 500:
            wrong.append(f"{family}: {r.status_code} {r.text[:200]}")
        elif r.status_code < 300:
            try:
                accepted = json.loads(data)
            except ValueError:
                accepted = None
            if not isinstance(accepted, dict) or not same_object(original, accepted):
                wrong.append(f"{family}: accepted {data[:200]!r}")
        else:
            assert r.headers["content-type"] == "application/problem+json", r.text
            assert r.json()["code"], r.text

    await asyncio.gather(*(post(f, d) for f, d in draws))
    record(
        "envelope-fuzz/http",
        f"{sum(tried.values())} damaged objects over HTTP ({dict(sorted(tried.items()))}), "
        f"statuses {dict(sorted(statuses.items()))}, {len(wrong)} accepted wrongly or 5xx",
    )
    assert not wrong, wrong[:5]
    # The untouched object still goes through: the fuzzing did not break the connection.
    r = await business.post(f"/v1/connections/{cid}/messages", {"object": original})
    assert r.status_code in (201, 409), r.text


def test_atheris_harness_finds_no_crash_in_a_bounded_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """fuzz/strict_json_fuzz.py under libFuzzer: a bounded run (longer under soak)."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    runs = profile(100_000, 5_000_000)
    seconds = profile(20, 120)
    out = subprocess.run(
        [
            sys.executable,
            str(root / "fuzz" / "strict_json_fuzz.py"),
            f"-runs={runs}",
            f"-max_total_time={seconds}",
            f"-artifact_prefix={tmp_path}/",
            str(tmp_path),
            str(root / "fuzz" / "corpus"),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    done = re.search(r"Done (\d+) runs in (\d+) second", out.stderr)
    assert out.returncode == 0 and done, out.stderr[-2000:]
    record(
        "strict-json-atheris",
        f"{done.group(1)} inputs in {done.group(2)} s, 0 crashes "
        "(no untyped error; accepted ⊂ stdlib JSON with equal values; no duplicates, floats, "
        "unsafe integers, lone surrogates or over-deep documents accepted)",
    )
