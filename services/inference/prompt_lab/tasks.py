"""The A/B job (arq, inference worker): every model x arm x sample, stored as it comes.

Idempotent: answers already stored are not asked again (a retry after a crash continues where
the last attempt stopped; the unique key drops a duplicate), and the summary is written once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from arq import Retry

from services.inference.config import InferenceSettings
from services.inference.evaluations.generator import (
    GenerationRefused,
    GenerationUnavailable,
    Generator,
)
from services.inference.evaluations.runner import gather_or_cancel
from services.inference.evaluations.service import caller_from
from services.inference.models import ABArm, EvaluationStatus
from services.inference.prompt_lab import ab_metrics, repository
from shared.db import session_scope, utcnow

logger = logging.getLogger("llmnet.inference.prompt_lab")
MAX_TRIES = 3


async def run_ab_test(ctx: dict[str, Any], run_id: str, caller: dict[str, Any]) -> str:
    settings: InferenceSettings = ctx["settings"]
    generator: Generator = ctx["generator"]
    sessionmaker = ctx["sessionmaker"]
    key = uuid.UUID(run_id)
    identity = caller_from(caller)
    async with session_scope(sessionmaker) as session:
        run = await repository.get(session, key)
        if run is None or not await repository.start(session, key):
            return "skipped"
        stored = {(o.model_ref, o.arm, o.sample) for o in await repository.outputs(session, key)}
        prompts = {ABArm.ORIGINAL: run.original, ABArm.REWRITE: run.rewrite}
        models, samples = list(run.models), run.samples
        sampling = dict(run.parameters["sampling"])
    gate = asyncio.Semaphore(settings.evaluation_concurrency)
    seed = sampling.pop("seed", None)

    async def one(model: str, arm: ABArm, sample: int) -> None:
        params = {**sampling, **({} if seed is None else {"seed": seed + sample})}
        async with gate:
            answer = await generator.answer(identity, model, prompts[arm], params)
        async with session_scope(sessionmaker) as session:
            await repository.add_output(
                session,
                {
                    "run_id": key,
                    "model_ref": model,
                    "arm": arm,
                    "sample": sample,
                    "text": answer.text,
                    "prompt_tokens": answer.prompt_tokens,
                    "completion_tokens": answer.completion_tokens,
                    "latency_ms": answer.latency_ms,
                    "metrics": ab_metrics.answer_metrics(
                        answer.text, answer.completion_tokens, answer.latency_ms
                    ),
                },
            )

    async def fail(reason: str) -> str:
        async with session_scope(sessionmaker) as session:
            await repository.finish(
                session, key, status=EvaluationStatus.FAILED, now=utcnow(), error=reason
            )
        return "failed"

    todo = [
        (model, arm, sample)
        for model in models
        for arm in ABArm
        for sample in range(samples)
        if (model, str(arm), sample) not in stored
    ]
    try:
        await gather_or_cancel([one(*item) for item in todo])
    except GenerationRefused as refused:
        return await fail(f"The model refused the run's requests: {refused.reason}")
    except GenerationUnavailable as exc:
        tries = int(ctx.get("job_try", 1))
        if tries < MAX_TRIES:
            logger.info("A/B run %s: %s; retrying", run_id, exc)
            raise Retry(defer=tries * 10) from exc
        return await fail(f"A model could not be reached after {tries} attempts.")
    async with session_scope(sessionmaker) as session:
        outputs = await repository.outputs(session, key)
        summary = ab_metrics.run_summary([(o.model_ref, o.arm, o.text, o.metrics) for o in outputs])
        written = await repository.finish(
            session, key, status=EvaluationStatus.COMPLETED, now=utcnow(), summary=summary
        )
    return "completed" if written else "skipped"
