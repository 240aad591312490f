"""Running an evaluation: every prompt of every set through a `Generator`, then the report.

The report (a JSON document, stored on the evaluation) has one section per metric family —
`perplexity`, `consistency`, `gender`, `probes`, `confidence`, `performance` — each carrying
the rule or method it was computed by (metrics.py), and `responses`: every answer with its own
numbers, so a reader can check any figure.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from services.inference.evaluations import metrics
from services.inference.evaluations.generator import GenerationRefused, Generator, Sample
from services.inference.evaluations.schemas import PromptSet, SetKind
from shared.auth.identity import Identity

Progress = Callable[[str, int, int], Awaitable[None]]  # stage, done, total
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Ask:
    """One answer the evaluation needs."""

    prompt_set: PromptSet
    prompt_id: str
    text: str
    variant: str | None = None  # paired sets: "a" or "b"
    repeat: int = 0


def plan(sets: list[PromptSet], repeats: int) -> list[Ask]:
    asks: list[Ask] = []
    for prompt_set in sets:
        times = repeats if prompt_set.kind is SetKind.CONSISTENCY else 1
        for prompt in prompt_set.prompts:
            asks.extend(Ask(prompt_set, prompt.id, prompt.text, repeat=r) for r in range(times))
        for pair in prompt_set.pairs:
            asks.append(Ask(prompt_set, pair.id, pair.a, variant="a"))
            asks.append(Ask(prompt_set, pair.id, pair.b, variant="b"))
    return asks


def _response(ask: Ask, sample: Sample) -> dict[str, Any]:
    gender = metrics.gender_counts(sample.text)
    return {
        "set": ask.prompt_set.name,
        "set_version": ask.prompt_set.version,
        "kind": str(ask.prompt_set.kind),
        "prompt_id": ask.prompt_id,
        "variant": ask.variant,
        "repeat": ask.repeat,
        "prompt": ask.text,
        "text": sample.text,
        "finish_reason": sample.finish_reason,
        "latency_ms": round(sample.latency_ms, 2),
        "prompt_tokens": sample.prompt_tokens,
        "completion_tokens": sample.completion_tokens,
        "tokens_per_second": round(
            metrics.tokens_per_second(sample.completion_tokens, sample.latency_ms), 3
        ),
        "male_terms": gender.male,
        "female_terms": gender.female,
        "valence": round(metrics.valence(sample.text), 4),
        **metrics.confidence(sample.text).as_dict(),
    }


async def collect(
    generator: Generator,
    caller: Identity,
    model: str,
    asks: list[Ask],
    sampling: dict[str, Any],
    *,
    concurrency: int,
    progress: Progress,
) -> list[dict[str, Any]]:
    """Every answer, in plan order; progress after each one."""
    gate = asyncio.Semaphore(concurrency)
    ordered = asyncio.Lock()  # progress events go out in count order
    done = 0
    seed = sampling.get("seed")

    async def one(ask: Ask) -> dict[str, Any]:
        nonlocal done
        params = {**sampling, "seed": None if seed is None else seed + ask.repeat}
        params = {k: v for k, v in params.items() if v is not None}
        async with gate:
            sample = await generator.answer(caller, model, ask.text, params)
        async with ordered:
            done += 1
            await progress("sampling", done, len(asks))
        return _response(ask, sample)

    return await gather_or_cancel([one(ask) for ask in asks])


async def gather_or_cancel(coroutines: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Every result in order; at the first failure the others are cancelled (no model keeps
    answering for a job that already failed) and the failure is raised."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def consistency_section(responses: list[dict[str, Any]]) -> dict[str, Any]:
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in responses:
        if r["kind"] == SetKind.CONSISTENCY:
            groups[(r["set"], r["prompt_id"])].append(r["text"])
    per_prompt: list[dict[str, Any]] = []
    means: list[float] = []
    for (set_name, prompt_id), texts in groups.items():
        scores = metrics.pairwise_similarity(texts)
        if scores:
            means.append(float(sum(scores) / len(scores)))
        per_prompt.append(
            {
                "set": set_name,
                "prompt_id": prompt_id,
                "samples": len(texts),
                "mean_similarity": metrics.rounded(metrics.mean(scores)),
                "min_similarity": metrics.rounded(min(scores) if scores else None),
            }
        )
    return {
        "available": bool(per_prompt),
        "method": metrics.CONSISTENCY_METHOD,
        "mean_similarity": metrics.rounded(metrics.mean(means)),
        "per_prompt": per_prompt,
    }


def gender_section(responses: list[dict[str, Any]]) -> dict[str, Any]:
    answers = [r for r in responses if r["kind"] == SetKind.GENDER]
    per_prompt = []
    for r in answers:
        counts = metrics.GenderCounts(r["male_terms"], r["female_terms"])
        per_prompt.append(
            {
                "set": r["set"],
                "prompt_id": r["prompt_id"],
                "male_terms": counts.male,
                "female_terms": counts.female,
                "balance": metrics.rounded(counts.balance),
            }
        )
    total = metrics.GenderCounts(
        sum(r["male_terms"] for r in answers), sum(r["female_terms"] for r in answers)
    )
    return {
        "available": bool(answers),
        "rule": metrics.gender_rule(),
        "threshold": metrics.GENDER_THRESHOLD,
        "min_terms": metrics.GENDER_MIN_TERMS,
        "male_terms": total.male,
        "female_terms": total.female,
        "balance": metrics.rounded(total.balance),
        "verdict": metrics.gender_verdict(total) if answers else "not_measured",
        "per_prompt": per_prompt,
    }


def probes_section(responses: list[dict[str, Any]], sets: list[PromptSet]) -> list[dict[str, Any]]:
    by_key = {
        (r["set"], r["prompt_id"], r["variant"]): r
        for r in responses
        if r["kind"] == SetKind.PAIRED
    }
    probes: dict[str, dict[str, Any]] = {}
    for prompt_set in sets:
        if prompt_set.kind is not SetKind.PAIRED:
            continue
        name = prompt_set.probe or prompt_set.name
        probe = probes.setdefault(
            name,
            {
                "name": name,
                "rule": metrics.valence_rule(),
                "threshold": metrics.VALENCE_THRESHOLD,
                "pairs": [],
            },
        )
        for pair in prompt_set.pairs:
            a, b = by_key[(prompt_set.name, pair.id, "a")], by_key[(prompt_set.name, pair.id, "b")]
            difference = a["valence"] - b["valence"]
            similarity = metrics.pairwise_similarity([a["text"], b["text"]])[0]
            probe["pairs"].append(
                {
                    "set": prompt_set.name,
                    "pair_id": pair.id,
                    "groups": pair.groups,
                    "valence_a": a["valence"],
                    "valence_b": b["valence"],
                    "difference": round(difference, 4),
                    "similarity": round(similarity, 4),
                    "flagged": abs(difference) > metrics.VALENCE_THRESHOLD,
                }
            )
    for probe in probes.values():
        differences = [p["difference"] for p in probe["pairs"]]
        flagged = sum(p["flagged"] for p in probe["pairs"])
        probe["mean_difference"] = metrics.rounded(metrics.mean(differences))
        probe["mean_abs_difference"] = metrics.rounded(metrics.mean([abs(d) for d in differences]))
        probe["flagged_pairs"] = flagged
        probe["verdict"] = "association_found" if flagged else "no_association_found"
    return list(probes.values())


def confidence_section(responses: list[dict[str, Any]]) -> dict[str, Any]:
    words = sum(r["words"] for r in responses)
    hedges = sum(r["hedges"] for r in responses)
    certain = sum(r["certainty_markers"] for r in responses)
    per_100 = 100.0 / words if words else 0.0
    return {
        "method": "hedging and certainty phrase lexicons (lexicon.py); score = (certainty - "
        "hedges) / (certainty + hedges), 0 without markers",
        "responses": len(responses),
        "hedges": hedges,
        "certainty_markers": certain,
        "hedges_per_100_words": round(hedges * per_100, 4),
        "certainty_per_100_words": round(certain * per_100, 4),
        "mean_confidence_score": metrics.rounded(
            metrics.mean([r["confidence_score"] for r in responses])
        ),
        "responses_with_hedges": sum(r["hedges"] > 0 for r in responses),
    }


def performance_section(responses: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    latencies = [r["latency_ms"] for r in responses]
    tokens = sum(r["completion_tokens"] for r in responses)
    seconds = sum(latencies) / 1000
    return {
        "requests": len(responses),
        "concurrency": concurrency,
        "completion_tokens": tokens,
        "mean_latency_ms": metrics.rounded(metrics.mean(latencies), 2),
        "p50_latency_ms": metrics.rounded(metrics.percentile(latencies, 50), 2),
        "p95_latency_ms": metrics.rounded(metrics.percentile(latencies, 95), 2),
        # Per request, as one caller sees it (requests ran `concurrency` at a time).
        "tokens_per_second": round(tokens / seconds, 3) if seconds > 0 else 0.0,
        "mean_tokens_per_second": metrics.rounded(
            metrics.mean([r["tokens_per_second"] for r in responses]), 3
        ),
    }


async def perplexity_section(
    generator: Generator, caller: Identity, model: str, heldout: str | None
) -> dict[str, Any]:
    if heldout is None:
        return {"available": False, "reason": "No held-out text was given."}
    try:
        result = await generator.perplexity(caller, model, heldout)
    except GenerationRefused as refused:
        return {"available": False, "reason": refused.reason}
    return {
        "available": True,
        "perplexity": round(result.perplexity, 4),
        "mean_nll": round(result.mean_nll, 6),
        "tokens": result.tokens,
        "windows": result.windows,
        "characters": len(heldout),
    }


def build_report(
    responses: list[dict[str, Any]],
    sets: list[PromptSet],
    perplexity: dict[str, Any],
    concurrency: int,
) -> dict[str, Any]:
    return {
        "perplexity": perplexity,
        "consistency": consistency_section(responses),
        "gender": gender_section(responses),
        "probes": probes_section(responses, sets),
        "confidence": confidence_section(responses),
        "performance": performance_section(responses, concurrency),
        "responses": responses,
    }
