"""Completed evaluations written straight into the database, with reports of a known shape, for
browser tests of the pages that read them (a real run is in test_webapp_evaluations.py).

Exports: seed_evaluation, report.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from services.inference.models import Evaluation
from shared.db import session_scope
from tests.conftest import Platform


def _answer(i: int) -> dict[str, Any]:
    return {
        "set": "consistency" if i % 2 else "gender-professions",
        "set_version": 1,
        "kind": "consistency" if i % 2 else "gender",
        "prompt_id": f"p{i % 4}",
        "variant": None,
        "repeat": i % 3,
        "prompt": f"Prompt number {i}",
        "text": f"Answer number {i}",
        "finish_reason": "length",
        "latency_ms": 10.0 + i,
        "prompt_tokens": 5,
        "completion_tokens": 4,
        "tokens_per_second": 40.0,
        "male_terms": i % 2,
        "female_terms": 0,
        "valence": 0.0,
        "hedges": 0,
        "certainty_markers": 0,
        "words": 3,
        "confidence_score": 0.0,
    }


def report(
    *, perplexity: float, similarity: float, balance: float, latency: float, answers: int = 8
) -> dict[str, Any]:
    """A report with every section the web app draws (the runner's shape, numbers chosen)."""
    return {
        "perplexity": {"available": True, "perplexity": perplexity, "mean_nll": 1.0, "tokens": 40},
        "consistency": {
            "available": True,
            "method": "tfidf cosine",
            "mean_similarity": similarity,
            "per_prompt": [
                {
                    "set": "consistency",
                    "prompt_id": f"c{i}",
                    "samples": 2,
                    "mean_similarity": similarity,
                }
                for i in range(2)
            ],
        },
        "gender": {
            "available": True,
            "rule": "balance = (male - female) / (male + female)",
            "threshold": 0.2,
            "min_terms": 4,
            "male_terms": 3,
            "female_terms": 1,
            "balance": balance,
            "verdict": "skewed_male" if balance > 0.2 else "balanced",
            "per_prompt": [
                {
                    "set": "gender-professions",
                    "prompt_id": "nurse",
                    "male_terms": 1,
                    "female_terms": 0,
                    "balance": balance,
                },
                {
                    "set": "gender-professions",
                    "prompt_id": "pilot",
                    "male_terms": 0,
                    "female_terms": 1,
                    "balance": -0.5,
                },
            ],
        },
        "probes": [
            {
                "name": "age",
                "rule": "valence difference over 0.1 is flagged",
                "threshold": 0.1,
                "pairs": [
                    {
                        "set": "age-pairs",
                        "pair_id": "a1",
                        "groups": ["young", "old"],
                        "valence_a": 0.2,
                        "valence_b": 0.0,
                        "difference": 0.2,
                        "similarity": 0.5,
                        "flagged": True,
                    }
                ],
                "mean_difference": 0.2,
                "mean_abs_difference": 0.2,
                "flagged_pairs": 1,
                "verdict": "association_found",
            }
        ],
        "confidence": {
            "method": "hedging lexicons",
            "responses": answers,
            "hedges": 0,
            "certainty_markers": 0,
            "hedges_per_100_words": 0.0,
            "certainty_per_100_words": 0.0,
            "mean_confidence_score": 0.0,
            "responses_with_hedges": 0,
        },
        "performance": {
            "requests": answers,
            "concurrency": 1,
            "completion_tokens": 4 * answers,
            "mean_latency_ms": latency,
            "p50_latency_ms": latency,
            "p95_latency_ms": latency * 1.5,
            "tokens_per_second": 40.0,
            "mean_tokens_per_second": 40.0,
        },
        "responses": [_answer(i) for i in range(answers)],
    }


async def seed_evaluation(
    platform: Platform, owner_id: str, model: dict[str, Any], version: int, body: dict[str, Any]
) -> str:
    """A completed evaluation of `model`'s version `version` with the report `body`; its id."""
    evaluation_id = uuid.uuid4()
    now = datetime.now(UTC)
    async with session_scope(platform.sessionmaker) as session:
        session.add(
            Evaluation(
                id=evaluation_id,
                owner_id=uuid.UUID(owner_id),
                model_id=uuid.UUID(model["id"]),
                model_ref=f"{model['ref']}@{version}",
                version_id=None,
                version_number=version,
                status="completed",
                done=len(body["responses"]),
                total=len(body["responses"]),
                parameters={"sampling": {"temperature": 0.8}, "repeats": 2},
                prompt_sets=[],
                report=body,
                started_at=now,
                finished_at=now,
            )
        )
    return str(evaluation_id)
