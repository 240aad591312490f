"""Schemathesis over the merged OpenAPI document, through the gateway, with every check on.

The run is bounded and repeatable: a fixed seed, derandomized generation, no example database,
a few examples per operation. It sends real HTTP to the gateway the `platform` fixture serves,
once as a plain user with an access token and once as a model developer with an API key, and
must find no 5xx and no answer that contradicts the document.

Nothing is left out. No model is ready during the run (uploads are never validated: no worker
runs), so the /v1 generation operations answer 404 or 409 before any token: what tokens and SSE
streams look like is tested in tests/inference with real tiny models.

Schemathesis is synchronous (requests), while the platform's servers run on this test's event
loop: the run goes to a worker thread so the loop keeps serving.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.engine import Status, events, from_schema

from tests.conftest import Platform
from tests.factories import api_key, user_session

# A bounded run, but minutes of requests: far more than the suite's default timeout; the limit
# leaves room for a slow machine.
pytestmark = pytest.mark.timeout(1200)
# The fuzzer reads each body whole, so every live feed it opens runs for the stream lifetime:
# 3 s here, not the suite's 20 (which the live-feed tests need), or those streams are most of
# the run.
FUZZED_STREAM_LIFETIME = 3

SEED = 20261121
MAX_EXAMPLES = 25


@dataclass(frozen=True)
class Allowance:
    """Statuses a schema-valid request may get for a rule JSON Schema cannot state."""

    method: str
    path: str
    statuses: tuple[int, ...]
    why: str


# Only statuses the run meets: an operation that answers 403 or 404 first (admin routes for
# these users, made-up ids) needs none.
ALLOWANCES = (
    Allowance(
        "POST",
        "/api/v1/auth/register",
        (422,),
        "password strength: letters mixed with other characters, 5 distinct ones, no username",
    ),
    Allowance("POST", "/api/v1/users/me/api-keys", (422,), "expires_at must be in the future"),
    Allowance("POST", "/api/v1/users/{username}/follow", (400,), "nobody may follow themselves"),
    Allowance(
        "POST",
        "/api/v1/models/{model_id}/versions",
        (422,),
        "which files make a model (config + weights + tokenizer, a GGUF, an archive of them) is "
        "judged on their contents",
    ),
    Allowance(
        "POST",
        "/api/v1/models/{model_id}/upload-sessions",
        (413, 422),
        "file names unique, an archive alone, part_size within the setting, MAX_UPLOAD_BYTES "
        "in all",
    ),
    Allowance(
        "PATCH",
        "/api/v1/models/{model_id}",
        (422,),
        "context_length is for models served by an external provider only",
    ),
    *(
        Allowance("POST", path, (400,), "a token is valid only as it was mailed")
        for path in ("/api/v1/auth/email/verify", "/api/v1/auth/password/reset")
    ),
    Allowance(
        "POST",
        "/api/v1/providers",
        (422,),
        "base_url must resolve to a public address (nothing resolves in the test sandbox)",
    ),
    # Issue 9 (C3): what a template is made of is judged on its text; attachments on content.
    Allowance(
        "POST",
        "/api/v1/prompt-templates",
        (422,),
        "declared variables must be the body's placeholders; only placeholders, if and filters",
    ),
    Allowance(
        "PATCH",
        "/api/v1/prompt-templates/{template_id}",
        (422,),
        "declared variables must be the body's placeholders; only placeholders, if and filters",
    ),
    Allowance(
        "POST",
        "/api/v1/prompt-templates/{template_id}/render",
        (422,),
        "the variables must be the template's own (missing or unknown ones are named)",
    ),
    Allowance(
        "POST",
        "/api/v1/conversations/{conversation_id}/attachments",
        (422,),
        "a file's type, readability and text are judged on its contents",
    ),
    *(
        Allowance("GET", path, (422,), "a cursor is valid only as the server issued it")
        for path in ("/api/v1/prompt-templates", "/api/v1/activity")
    ),
    *(
        Allowance("GET", path, (422,), "a cursor is valid only as the server issued it")
        for path in (
            "/api/v1/conversations",
            "/api/v1/models",
            "/api/v1/usage",
            "/api/v1/users",
            "/api/v1/users/{username}/followers",
            "/api/v1/users/{username}/following",
        )
    ),
    # Issue 10 (part A): timelines page with server-issued cursors; the live feed resumes
    # only from an id it sent.
    *(
        Allowance("GET", path, (422,), "a cursor is valid only as the server issued it")
        for path in (
            "/api/v1/feed/home",
            "/api/v1/feed/public",
            "/api/v1/feed/trending",
            "/api/v1/feed/models/{model_id}",
            "/api/v1/feed/users/{user_id}",
        )
    ),
    *(
        Allowance("GET", path, (422,), "Last-Event-ID is valid only as the stream sent it")
        for path in ("/api/v1/feed/stream", "/api/v1/notifications/stream")
    ),
    # Issue 12 (evaluations, prompt lab): rules JSON Schema cannot state.
    *(
        Allowance(
            "POST",
            path,
            (422,),
            "prompt sets are named built-in ones (or well-formed custom ones) within a total size",
        )
        for path in (
            "/api/v1/models/{model_id}/evaluations",
            "/api/v1/models/by-ref/{owner}/{slug}/evaluations",
        )
    ),
    Allowance("GET", "/api/v1/evaluations/compare", (422,), "a and b must differ"),
    Allowance("POST", "/api/v1/prompt-lab/analyze", (422,), "the model methods need `model`"),
    Allowance("POST", "/api/v1/prompt-lab/ab-tests", (422,), "each model named once"),
    *(
        Allowance("GET", path, (422,), "a cursor is valid only as the server issued it")
        for path in (
            "/api/v1/evaluations",
            "/api/v1/models/{model_id}/evaluations",
            "/api/v1/prompt-lab/ab-tests",
        )
    ),
    Allowance(
        "GET",
        "/api/v1/evaluations/{evaluation_id}/events",
        (400,),
        "Last-Event-ID is valid only as the stream sent it",
    ),
    # Issue 10 (part B): notifications page with server-issued cursors.
    Allowance(
        "GET", "/api/v1/notifications", (422,), "a cursor is valid only as the server issued it"
    ),
    # Fine-tunes page with server-issued cursors.
    *(
        Allowance("GET", path, (422,), "a cursor is valid only as the server issued it")
        for path in ("/api/v1/fine-tunes", "/api/v1/models/{model_id}/fine-tunes")
    ),
)


def _config(gateway_url: str, headers: dict[str, str]) -> schemathesis.Config:
    # Schemathesis's defaults less 5xx: a server error is never an acceptable answer.
    positive = ["2xx", "3xx", "401", "403", "404", "409", "429"]
    operations: list[dict[str, Any]] = [
        {
            # One name ("METHOD /path"): separate method and path filters would match either.
            "include-name": f"{allowance.method} {allowance.path}",
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": [*positive, *map(str, allowance.statuses)]
                }
            },
        }
        for allowance in ALLOWANCES
    ]
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "base-url": gateway_url,
            "headers": headers,
            "workers": 1,
            "request-timeout": 60,
            # The failures must show the request as sent: these credentials live for one test.
            "output": {"sanitization": {"enabled": False}},
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            # Chains of linked calls (create a model, then read, change, like, delete it) stay
            # short: the stateful checks (use after free, availability) need only a few steps.
            "phases": {"stateful": {"enabled": True, "max-steps": 10}},
            "checks": {
                "enabled": True,
                "positive_data_acceptance": {"expected-statuses": positive},
            },
            "operations": operations,
        }
    )


def _run(gateway_url: str, headers: dict[str, str]) -> list[str]:
    config = _config(gateway_url, headers)
    schema = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json", config=config)
    problems: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for case_id, nodes in event.recorder.checks.items():
                for node in nodes:
                    if node.status == Status.FAILURE and node.failure_info is not None:
                        failure = node.failure_info.failure
                        response = event.recorder.find_response(case_id=case_id)
                        answer = f"{response.status_code} {response.text[:300]}" if response else ""
                        problems.append(
                            f"{event.recorder.label} ({node.name}): {failure.title}\n"
                            f"  {failure.message}\n  {node.failure_info.code_sample}\n"
                            f"  answered: {answer}"
                        )
        elif isinstance(event, events.NonFatalError):
            problems.append(f"{event.label}: error {event.value!r}")
        elif isinstance(event, events.FatalError):
            problems.append(f"fatal: {event.exception!r}")
    return sorted(set(problems))


@pytest.fixture(autouse=True)
def _short_streams(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = platform.apps["feed"].state.feed.settings
    monkeypatch.setattr(settings, "stream_lifetime_seconds", FUZZED_STREAM_LIFETIME)


async def test_plain_user_with_an_access_token(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    user = await user_session(client)
    problems = await asyncio.to_thread(_run, platform.gateway_url, user.headers)
    assert not problems, "\n\n".join(problems)


async def test_model_developer_with_an_api_key(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    user = await user_session(client)
    response = await client.patch(
        "/api/v1/users/me", json={"is_model_developer": True}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    key = (await api_key(client, user))["key"]
    problems = await asyncio.to_thread(
        _run, platform.gateway_url, {"Authorization": f"Bearer {key}"}
    )
    assert not problems, "\n\n".join(problems)
