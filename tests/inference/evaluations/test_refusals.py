"""What an evaluation request may not do, and who may not see a report."""

from __future__ import annotations

from typing import Any

from tests.inference.conftest import ready_model
from tests.inference.evaluations.conftest import run_jobs
from tests.inference.evaluations.test_reports import request
from tests.models_hub.conftest import developer


async def test_limits_and_bad_sets_are_422(client, owner, llama) -> None:  # type: ignore[no-untyped-def]
    url = f"/api/v1/models/{llama['id']}/evaluations"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"repeats": 50}, "repeats_too_large"),
        ({"sampling": {"max_tokens": 100_000}}, "max_tokens_too_large"),
        ({"prompt_sets": ["no-such-set"]}, "unknown_prompt_set"),
        ({"prompt_sets": ["consistency@9"]}, "unknown_prompt_set"),
        ({"prompt_sets": [], "custom_sets": []}, "unknown_prompt_set"),
    ]
    for overrides, code in cases:
        response = await client.post(url, headers=owner.headers, json=request(**overrides))
        assert response.status_code == 422, (overrides, response.text)
        assert response.json()["code"] == code
    malformed = {"name": "mine", "kind": "paired", "prompts": [{"id": "x", "text": "hi"}]}
    response = await client.post(
        url, headers=owner.headers, json=request(prompt_sets=[], custom_sets=[malformed])
    )
    assert response.status_code == 422
    assert "paired" in response.text


async def test_custom_set_runs(client, worker_ctx, owner, llama) -> None:  # type: ignore[no-untyped-def]
    custom = {"name": "mine", "kind": "gender", "prompts": [{"id": "chef", "text": "A chef."}]}
    response = await client.post(
        f"/api/v1/models/by-ref/{llama['ref']}/evaluations",
        headers=owner.headers,
        json=request(prompt_sets=[], custom_sets=[custom], heldout_text=None),
    )
    assert response.status_code == 202, response.text
    assert await run_jobs(worker_ctx) == ["completed"]
    evaluation = (
        await client.get(f"/api/v1/evaluations/{response.json()['id']}", headers=owner.headers)
    ).json()
    assert evaluation["report"]["perplexity"]["available"] is False
    assert evaluation["report"]["gender"]["per_prompt"][0]["prompt_id"] == "chef"


async def test_a_version_that_is_not_ready_is_404(client, owner, llama) -> None:  # type: ignore[no-untyped-def]
    response = await client.post(
        f"/api/v1/models/{llama['id']}/evaluations", headers=owner.headers, json=request(version=3)
    )
    assert response.status_code == 404
    assert response.json()["code"] == "model_not_found"
    assert "no ready version 3" in response.json()["detail"]


async def test_private_model_of_another_user_is_404(  # type: ignore[no-untyped-def]
    client, platform, owner, tiny_llama_dir
) -> None:
    other = await developer(client, "other")
    private = await ready_model(
        platform, other, tiny_llama_dir, slug="secret", visibility="private"
    )
    response = await client.post(
        f"/api/v1/models/{private['id']}/evaluations", headers=owner.headers, json=request()
    )
    assert response.status_code == 404


async def test_another_users_report_is_404(client, worker_ctx, owner, llama) -> None:  # type: ignore[no-untyped-def]
    response = await client.post(
        f"/api/v1/models/{llama['id']}/evaluations",
        headers=owner.headers,
        json=request(prompt_sets=["consistency"], heldout_text=None),
    )
    evaluation_id = response.json()["id"]
    await run_jobs(worker_ctx)
    stranger = await developer(client, "stranger")
    for path in ("", "/export", "/events"):
        answer = await client.get(
            f"/api/v1/evaluations/{evaluation_id}{path}", headers=stranger.headers
        )
        assert answer.status_code == 404, path
        assert answer.json()["code"] == "evaluation_not_found"
    compared = await client.get(
        "/api/v1/evaluations/compare",
        params={"a": evaluation_id, "b": evaluation_id},
        headers=owner.headers,
    )
    assert compared.status_code == 422
    listed = await client.get("/api/v1/evaluations", headers=stranger.headers)
    assert listed.json()["items"] == []


async def test_anonymous_is_401(client, llama) -> None:  # type: ignore[no-untyped-def]
    response = await client.post(f"/api/v1/models/{llama['id']}/evaluations", json=request())
    assert response.status_code == 401
