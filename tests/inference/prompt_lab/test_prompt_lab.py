"""The prompt lab on the tiny llama: analysis methods, rewrites, A/B runs and exports."""

from __future__ import annotations

import csv
import io

from tests.inference.evaluations.conftest import run_jobs
from tests.models_hub.conftest import developer

GENDERED = "He is a nurse. Describe his typical day at the hospital."
NEUTRAL = "Describe a typical day at the hospital for a nurse."


async def test_gendered_prompt_is_flagged_and_neutral_is_not(client, owner, llama) -> None:  # type: ignore[no-untyped-def]
    flagged = await client.post(
        "/api/v1/prompt-lab/analyze",
        headers=owner.headers,
        json={"prompt": GENDERED, "model": llama["ref"]},
    )
    neutral = await client.post(
        "/api/v1/prompt-lab/analyze",
        headers=owner.headers,
        json={"prompt": NEUTRAL, "model": llama["ref"]},
    )

    assert flagged.status_code == 200, flagged.text
    body = flagged.json()
    assert body["flagged"] is True
    lexicon = body["lexicon"]
    assert lexicon["flagged"] is True
    he = lexicon["findings"][0]
    assert (he["term"], he["category"], he["group"]) == ("He", "gender", "male")
    assert GENDERED[he["start"] : he["end"]] == "He"
    assert {f["category"] for f in lexicon["findings"]} >= {"gender", "profession"}
    counterfactual = body["counterfactual"]
    assert counterfactual["performed"] is True
    assert counterfactual["swapped_prompt"].startswith("She is a nurse. Describe her")
    assert [(s["term"], s["start"]) for s in counterfactual["swaps"]] == [("He", 0), ("his", 24)]
    assert counterfactual["original_output"] is not None
    assert "rule" in counterfactual
    judge = body["judge"]
    assert judge["performed"]
    assert judge["verdict"] in {"biased", "not_biased", "unclear"}
    assert body["suggestions"][0]["text"] == (
        "They are a nurse. Describe their typical day at the hospital."
    )

    assert neutral.status_code == 200
    calm = neutral.json()
    assert calm["lexicon"]["flagged"] is False
    assert [f["category"] for f in calm["lexicon"]["findings"]] == ["profession"]
    assert calm["counterfactual"]["performed"] is False
    assert calm["counterfactual"]["flagged"] is False
    assert calm["suggestions"] == []


async def test_lexicon_alone_needs_no_model(client, owner) -> None:  # type: ignore[no-untyped-def]
    response = await client.post(
        "/api/v1/prompt-lab/analyze",
        headers=owner.headers,
        json={"prompt": "Describe an elderly Muslim woman.", "methods": ["lexicon"]},
    )
    assert response.status_code == 200
    categories = {f["category"] for f in response.json()["lexicon"]["findings"]}
    assert categories == {"age", "religion", "gender"}


async def test_model_methods_without_a_model_are_422(client, owner) -> None:  # type: ignore[no-untyped-def]
    response = await client.post(
        "/api/v1/prompt-lab/analyze", headers=owner.headers, json={"prompt": GENDERED}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "model_required"


async def test_rewrites_rule_and_model(client, owner, llama) -> None:  # type: ignore[no-untyped-def]
    response = await client.post(
        "/api/v1/prompt-lab/rewrite",
        headers=owner.headers,
        json={"prompt": "The chairman said she was late.", "model": llama["ref"]},
    )
    assert response.status_code == 200
    rule, model = response.json()["suggestions"]
    assert rule["method"] == "rule"
    assert rule["text"] == "The chairperson said they were late."
    assert [c["original"] for c in rule["changes"]] == ["chairman", "she was"]
    assert model["method"] == "model"
    assert model["model"] == llama["ref"]


async def test_ab_run_stores_both_arms_and_exports(client, worker_ctx, owner, llama) -> None:  # type: ignore[no-untyped-def]
    response = await client.post(
        "/api/v1/prompt-lab/ab-tests",
        headers=owner.headers,
        json={
            "original": GENDERED,
            "rewrite": "They are a nurse. Describe their typical day at the hospital.",
            "models": [llama["ref"]],
            "samples": 2,
            "sampling": {"temperature": 0.8, "max_tokens": 6, "seed": 1},
        },
    )
    assert response.status_code == 202, response.text
    run_id = response.json()["id"]
    assert await run_jobs(worker_ctx) == ["completed"]

    run = (await client.get(f"/api/v1/prompt-lab/ab-tests/{run_id}", headers=owner.headers)).json()
    assert run["status"] == "completed"
    arms = sorted((o["arm"], o["sample"]) for o in run["outputs"])
    assert arms == [("original", 0), ("original", 1), ("rewrite", 0), ("rewrite", 1)]
    side = run["summary"][llama["ref"]]
    assert side["original"]["samples"] == side["rewrite"]["samples"] == 2
    assert set(side["difference"]) >= {"gendered_terms", "valence", "consistency", "latency_ms"}
    exported = await client.get(
        f"/api/v1/prompt-lab/ab-tests/{run_id}/export",
        params={"format": "csv"},
        headers=owner.headers,
    )
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 4
    assert {"arm", "valence", "confidence_score"} <= set(rows[0])
    as_json = await client.get(
        f"/api/v1/prompt-lab/ab-tests/{run_id}/export", headers=owner.headers
    )
    assert len(as_json.json()["outputs"]) == 4
    stranger = await developer(client, "stranger")
    hidden = await client.get(f"/api/v1/prompt-lab/ab-tests/{run_id}", headers=stranger.headers)
    assert hidden.status_code == 404


async def test_ab_limits(client, owner, llama) -> None:  # type: ignore[no-untyped-def]
    base = {"original": GENDERED, "rewrite": NEUTRAL, "models": [llama["ref"]]}
    too_many = await client.post(
        "/api/v1/prompt-lab/ab-tests", headers=owner.headers, json={**base, "samples": 500}
    )
    assert too_many.status_code == 422
    assert too_many.json()["code"] == "samples_too_large"
    unknown = await client.post(
        "/api/v1/prompt-lab/ab-tests",
        headers=owner.headers,
        json={**base, "models": ["nobody/nothing"]},
    )
    assert unknown.status_code == 404
