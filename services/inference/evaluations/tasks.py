"""The evaluation job (arq, inference worker): sample the model, score, store the report.

Idempotent: the job re-reads its evaluation and does nothing unless it is queued or running
(a retry after a crash starts the sampling again and the report is written once, with
`WHERE status IN (queued, running)`). Every call names the evaluated version
(`<owner>/<slug>@<n>`), so activating another version mid-run does not mix two in one report.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from arq import Retry

from services.inference.config import InferenceSettings
from services.inference.evaluations import progress as events
from services.inference.evaluations import prompt_sets, repository, runner
from services.inference.evaluations.generator import (
    GenerationRefused,
    GenerationUnavailable,
    Generator,
)
from services.inference.evaluations.schemas import ProgressEvent, PromptSet, Sampling
from services.inference.evaluations.service import KIND, caller_from
from services.inference.models import EvaluationStatus
from shared.db import session_scope, utcnow

logger = logging.getLogger("llmnet.inference.evaluations")
MAX_TRIES = 3


async def run_evaluation(ctx: dict[str, Any], evaluation_id: str, caller: dict[str, Any]) -> str:
    """The job: its outcome ("skipped", "failed" or "completed") is for the worker's log."""
    settings: InferenceSettings = ctx["settings"]
    generator: Generator = ctx["generator"]
    redis = ctx["redis"]
    sessionmaker = ctx["sessionmaker"]
    key_id = uuid.UUID(evaluation_id)
    key = events.events_key(KIND, key_id)
    ttl = settings.evaluation_events_ttl_seconds
    identity = caller_from(caller)
    async with session_scope(sessionmaker) as session:
        evaluation = await repository.get(session, key_id)
        if evaluation is None or not await repository.start(session, key_id, utcnow()):
            return "skipped"
        sets = [PromptSet.model_validate(s) for s in evaluation.prompt_sets]
        sampling = Sampling.model_validate(evaluation.parameters["sampling"])
        repeats = int(evaluation.parameters["repeats"])
        heldout, model_ref = evaluation.heldout_text, evaluation.model_ref
        version_id, version_number = evaluation.version_id, evaluation.version_number
        model_id, total = evaluation.model_id, evaluation.total

    async def publish(
        stage: str, done: int, status: EvaluationStatus, error: str | None = None
    ) -> None:
        event = events.DONE if stage in ("completed", "failed") else events.PROGRESS
        percent = round(100.0 * done / total, 2) if total else 100.0
        payload = ProgressEvent(
            status=status, stage=stage, done=done, total=total, percent=percent, error=error
        )
        await events.publish(redis, key, event, payload, ttl)

    async def on_progress(stage: str, done: int, _: int) -> None:
        async with session_scope(sessionmaker) as session:
            await repository.set_progress(session, key_id, done)
        await publish(stage, done, EvaluationStatus.RUNNING)

    async def fail(reason: str) -> str:
        async with session_scope(sessionmaker) as session:
            await repository.finish(
                session, key_id, status=EvaluationStatus.FAILED, now=utcnow(), error=reason
            )
        await publish("failed", 0, EvaluationStatus.FAILED, reason)
        return "failed"

    await publish("started", 0, EvaluationStatus.RUNNING)
    concurrency = settings.evaluation_concurrency
    try:
        # `model_ref` names the evaluated version (`<ref>@<n>`): every call runs on it.
        responses = await runner.collect(
            generator,
            identity,
            model_ref,
            runner.plan(sets, repeats),
            sampling.model_dump(),
            concurrency=concurrency,
            progress=on_progress,
        )
        await publish("perplexity", total, EvaluationStatus.RUNNING)
        perplexity = await runner.perplexity_section(generator, identity, model_ref, heldout)
    except GenerationRefused as refused:
        return await fail(f"The model refused the evaluation's requests: {refused.reason}")
    except GenerationUnavailable as exc:
        tries = int(ctx.get("job_try", 1))
        if tries < MAX_TRIES:
            logger.info("evaluation %s: %s; retrying", evaluation_id, exc)
            raise Retry(defer=tries * 10) from exc
        return await fail(f"The model could not be reached after {tries} attempts.")
    report = {
        "model": {
            "id": str(model_id),
            "ref": model_ref,
            "version_id": None if version_id is None else str(version_id),
            "version_number": version_number,
        },
        "parameters": {"sampling": sampling.model_dump(), "repeats": repeats},
        "prompt_sets": [prompt_sets.summary(s).model_dump(mode="json") for s in sets],
        **runner.build_report(responses, sets, perplexity, concurrency),
    }
    async with session_scope(sessionmaker) as session:
        written = await repository.finish(
            session, key_id, status=EvaluationStatus.COMPLETED, now=utcnow(), report=report
        )
    if not written:
        return "skipped"
    await publish("completed", total, EvaluationStatus.COMPLETED)
    return "completed"
