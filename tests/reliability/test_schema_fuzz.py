"""Family 1 — schema fuzzing of every operation with schemathesis, as real parties.

Cases are generated from the app's own OpenAPI (positive and negative data), sent over
real HTTP to the live server with a valid bearer token of a registered party, and checked
with schemathesis: no 5xx, responses conform to the documented schema, status code and
content type, and no operation ignores authentication. Half of the cases get real
resource ids (a connection, grant, favour, message and invitation the caller can see) so
the fuzzing reaches past the 404 of an unknown id.

``ignored_auth`` works because the OpenAPI declares the ``bearer`` scheme on every operation
that needs a subject (public ones: see ``PUBLIC``, checked against the document).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from rapport_protocol import MessageType
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers import Actor, connect
from tests.reliability.conftest import profile, record

M = MessageType
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/.well-known/rapport-webhook-keys"),
    ("GET", "/v1/"),
    ("GET", "/v1/invitations/by-token/{token}"),
    ("POST", "/v1/oauth/token"),
    ("POST", "/v1/parties"),
}
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    ignored_auth,
]


async def _world(actor) -> tuple[Actor, dict[str, str]]:  # type: ignore[no-untyped-def]
    """A person with one connection holding each kind of resource; returns it and the ids."""
    person, shop = actor(), actor()
    await person.register("person", "fuzz-person")
    await shop.register("business", "fuzz-shop")
    cid = await connect(
        shop,
        person,
        person_grants=[{"scope": "message", "topic": "news"}],
        business_grants=[{"scope": "favour", "topic": "callback"}],
    )
    grant = (await person.get(f"/v1/connections/{cid}/grants")).json()["granted_by_me"][0]["id"]
    favour = await person.act(
        "POST",
        f"/v1/connections/{cid}/favours",
        M.FAVOUR_REQUEST,
        {"kind": "callback", "description": "call me"},
        cid,
    )
    assert favour.status_code == 201, favour.text
    assert (await shop.send(cid, "news", "hi")).status_code == 201
    message = (await person.get("/v1/messages")).json()["data"][0]["id"]
    invitation = (await shop.invite(to=[person.did])).json()
    return person, {
        "cid": cid,
        "grant_id": grant,
        "favour_id": favour.json()["id"],
        "message_id": str(message),
        "invitation_id": invitation["id"],
        "token": invitation["token"],
    }


def _fuzz(
    spec: dict[str, Any], base_url: str, token: str, ids: dict[str, str], examples: int
) -> tuple[int, Counter[str], list[str]]:
    schema = schemathesis.openapi.from_dict(spec)
    cases = 0
    statuses: Counter[str] = Counter()
    failures: list[str] = []
    auth = {"Authorization": f"Bearer {token}"}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode), real=st.booleans())
            def run(case: Any, real: bool) -> None:
                nonlocal cases
                if real and case.path_parameters:
                    for name in case.path_parameters:
                        if name in ids:
                            case.path_parameters[name] = ids[name]
                headers = auth if (case.method.upper(), case.path) not in PUBLIC else {}
                response = case.call(base_url=base_url, headers=headers, timeout=30)
                cases += 1
                statuses[f"{response.status_code // 100}xx"] += 1
                try:
                    case.validate_response(response, checks=CHECKS, headers=headers)
                except FailureGroup as exc:
                    text = [
                        type(e).__name__ + ": " + str(e).splitlines()[0] for e in exc.exceptions
                    ]
                    failures.append(
                        f"{case.method} {case.path} -> {response.status_code}: {' / '.join(text)}"
                    )

            # Unsatisfiable: nothing to negate (an operation without parameters or body).
            with contextlib.suppress(Unsatisfiable):
                run()
    return cases, statuses, failures


async def test_schema_fuzz_finds_no_server_errors_schema_violations_or_ignored_auth(
    actor, server_url: str
) -> None:  # type: ignore[no-untyped-def]
    from rapport_server.app import create_app

    person, ids = await _world(actor)
    spec = create_app().openapi()
    public = {
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if not op.get("security")
    }
    assert public == PUBLIC
    examples = profile(8, 60)
    cases, statuses, failures = await asyncio.to_thread(
        _fuzz, spec, server_url, person.token, ids, examples
    )
    operations = sum(len(ops) for ops in spec["paths"].values())
    server_errors = statuses.get("5xx", 0)
    record(
        "schema-fuzz",
        f"{operations} operations, {cases} cases ({dict(sorted(statuses.items()))}), "
        f"{server_errors} server errors, {len(failures)} check failures "
        "(schema, status, content type, ignored auth)",
    )
    assert server_errors == 0
    assert not failures, "\n".join(sorted(set(failures))[:40])
