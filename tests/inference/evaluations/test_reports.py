"""Evaluation reports end to end on the tiny llama: report, progress, compare, export."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import httpx

from tests.factories import UserSession
from tests.inference.conftest import activate_new_version
from tests.inference.evaluations.conftest import run_jobs
from tests.inference.messages.conftest import stream_events

HELDOUT = "The quick brown fox jumps over the lazy dog. " * 6
SETS = ["consistency", "gender-professions", "age-pairs", "cultural-pairs"]


def request(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt_sets": SETS,
        "sampling": {"temperature": 0.9, "max_tokens": 6, "seed": 7},
        "repeats": 2,
        "heldout_text": HELDOUT,
    }
    return {**body, **overrides}


async def evaluate(
    client: httpx.AsyncClient,
    worker_ctx: dict[str, Any],
    user: UserSession,
    model: dict[str, Any],
    **overrides: Any,
) -> dict[str, Any]:
    response = await client.post(
        f"/api/v1/models/{model['id']}/evaluations", headers=user.headers, json=request(**overrides)
    )
    assert response.status_code == 202, response.text
    queued = response.json()
    assert queued["status"] == "queued"
    assert await run_jobs(worker_ctx) == ["completed"]
    response = await client.get(f"/api/v1/evaluations/{queued['id']}", headers=user.headers)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_report_has_every_metric(client, worker_ctx, owner, llama) -> None:  # type: ignore[no-untyped-def]
    evaluation = await evaluate(client, worker_ctx, owner, llama)

    assert evaluation["status"] == "completed"
    assert evaluation["progress"] == 1.0
    assert evaluation["version_number"] == 1
    report = evaluation["report"]
    perplexity = report["perplexity"]
    assert perplexity["available"] is True
    assert 1.0 < perplexity["perplexity"] < 1e6
    assert perplexity["tokens"] > 10
    consistency = report["consistency"]
    assert consistency["available"]
    assert "tfidf" in consistency["method"]
    assert len(consistency["per_prompt"]) == 4
    assert all(0.0 <= p["mean_similarity"] <= 1.0 for p in consistency["per_prompt"])
    gender = report["gender"]
    assert "balance" in gender["rule"]
    assert gender["threshold"] == 0.2
    assert gender["verdict"] in {"insufficient_data", "balanced", "skewed_male", "skewed_female"}
    assert len(gender["per_prompt"]) == 6
    probes = {p["name"]: p for p in report["probes"]}
    assert set(probes) == {"age", "cultural"}
    assert all(len(p["pairs"]) == 3 and "valence" in p["rule"] for p in probes.values())
    confidence = report["confidence"]
    assert confidence["responses"] == 8 + 6 + 6 + 6
    assert -1.0 <= confidence["mean_confidence_score"] <= 1.0
    performance = report["performance"]
    assert performance["requests"] == 26
    assert performance["mean_latency_ms"] > 0
    assert performance["tokens_per_second"] > 0
    assert performance["p95_latency_ms"] >= performance["p50_latency_ms"]
    assert len(report["responses"]) == 26
    assert all(r["completion_tokens"] >= 1 for r in report["responses"])
    assert not math.isnan(perplexity["mean_nll"])


async def test_progress_events_arrive_in_order_and_resume(client, worker_ctx, owner, llama) -> None:  # type: ignore[no-untyped-def]
    evaluation = await evaluate(client, worker_ctx, owner, llama, heldout_text=None)
    url = f"/api/v1/evaluations/{evaluation['id']}/events"

    events = await stream_events(client, "GET", url, owner)

    assert [e.event for e in events][-1] == "done"
    assert events[0].data["stage"] == "started"
    sampled = [e.data["done"] for e in events if e.data["stage"] == "sampling"]
    assert sampled == list(range(1, 27))
    assert events[-1].data["status"] == "completed"
    assert events[-1].data["percent"] == 100.0
    resumed = await stream_events(
        client, "GET", url, owner, headers={"Last-Event-ID": events[4].id}
    )
    assert [e.id for e in resumed] == [e.id for e in events[5:]]


async def test_bad_last_event_id_is_400(client, worker_ctx, owner, llama) -> None:  # type: ignore[no-untyped-def]
    evaluation = await evaluate(client, worker_ctx, owner, llama, heldout_text=None)
    response = await client.get(
        f"/api/v1/evaluations/{evaluation['id']}/events",
        headers={**owner.headers, "Last-Event-ID": "nope"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_last_event_id"


async def test_two_versions_compare(
    client, worker_ctx, owner, llama, platform, tiny_gpt2_dir
) -> None:  # type: ignore[no-untyped-def]
    await activate_new_version(platform, llama, tiny_gpt2_dir)
    # The version no longer served by default is still evaluated, by its number.
    first = await evaluate(client, worker_ctx, owner, llama, prompt_sets=["consistency"], version=1)
    second = await evaluate(client, worker_ctx, owner, llama, prompt_sets=["consistency"])
    assert (first["version_number"], second["version_number"]) == (1, 2)
    assert first["model_ref"] == f"{llama['ref']}@1"
    assert first["report"]["perplexity"]["available"] is True

    response = await client.get(
        "/api/v1/evaluations/compare",
        params={"a": first["id"], "b": second["id"]},
        headers=owner.headers,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["a"]["version_number"] == 1
    assert body["b"]["version_number"] == 2
    rows = {m["metric"]: m for m in body["metrics"]}
    perplexity = rows["perplexity"]
    assert perplexity["a"] != perplexity["b"]
    assert perplexity["difference"] == round(perplexity["b"] - perplexity["a"], 6)
    assert perplexity["better"] in {"a", "b"}
    assert isinstance(perplexity["highlight"], bool)
    assert "consistency.mean_similarity" in rows
    assert "performance.tokens_per_second" in rows


async def test_exports_parse(client, worker_ctx, owner, llama) -> None:  # type: ignore[no-untyped-def]
    evaluation = await evaluate(client, worker_ctx, owner, llama)
    url = f"/api/v1/evaluations/{evaluation['id']}/export"

    as_json = await client.get(url, headers=owner.headers)
    metrics_csv = await client.get(url, params={"format": "csv"}, headers=owner.headers)
    answers_csv = await client.get(
        url, params={"format": "csv", "table": "responses"}, headers=owner.headers
    )

    assert as_json.status_code == 200
    assert json.loads(as_json.content)["report"]["perplexity"] == evaluation["report"]["perplexity"]
    assert metrics_csv.status_code == 200
    assert metrics_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(metrics_csv.text)))
    found = {(r["section"], r["metric"]) for r in rows}
    for expected in [
        ("perplexity", "perplexity"),
        ("consistency", "mean_similarity"),
        ("gender", "balance"),
        ("probes.age", "mean_abs_difference"),
        ("probes.cultural", "flagged_pairs"),
        ("confidence", "mean_confidence_score"),
        ("performance", "tokens_per_second"),
    ]:
        assert expected in found
    answers = list(csv.DictReader(io.StringIO(answers_csv.text)))
    assert len(answers) == 26
    assert float(answers[0]["latency_ms"]) > 0
