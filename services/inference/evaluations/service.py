"""Evaluations: asking for one (checks, limits, the job), reading them, comparing, exporting.

Only the owner of an evaluation sees it (anyone else gets 404, as for a model they may not
use); an evaluation runs only on a model its owner may use, checked through the model hub when
it is asked for and again by every call the job makes.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.inference.deps import InferenceContext
from services.inference.evaluations import compare, progress, prompt_sets, repository
from services.inference.evaluations.schemas import (
    EvaluationComparison,
    EvaluationCreate,
    EvaluationPage,
    EvaluationRead,
    EvaluationSummary,
    ProgressEvent,
    PromptSet,
)
from services.inference.models import Evaluation, EvaluationStatus, UsageSource
from services.inference.openai.service import ModelNotReady
from services.inference.queue import INFERENCE_QUEUE
from shared.auth.identity import Identity, Scope
from shared.db import session_scope
from shared.errors import Conflict, Forbidden, NotFound, TooManyRequests, UnprocessableEntity
from shared.jobs import enqueue_after_commit
from shared.models_client import ModelAccess
from shared.sse import ServerSentEvent

EVALUATION_JOB = "run_evaluation"
KIND = "evaluation"  # its events' Redis key


class EvaluationNotFound(NotFound):
    code = "evaluation_not_found"


class EvaluationNotFinished(Conflict):
    code = "evaluation_not_finished"


class VersionsNotHosted(Conflict):
    code = "versions_not_hosted"


class TooManyEvaluations(TooManyRequests):
    code = "too_many_evaluations"


class InferenceScopeRequired(Forbidden):
    code = "insufficient_scope"


def caller_payload(caller: Identity) -> dict[str, Any]:
    """The identity a job acts as, in its arguments (see `caller_from`)."""
    return {
        "user_id": str(caller.user_id),
        "username": caller.username,
        "role": caller.role,
        "scopes": sorted(caller.scopes),
        "auth_method": caller.auth_method,
        "api_key_id": caller.api_key_id,
    }


def caller_from(payload: dict[str, Any]) -> Identity:
    return Identity(
        user_id=uuid.UUID(str(payload["user_id"])),
        username=str(payload["username"]),
        role=str(payload["role"]),
        scopes=frozenset(str(s) for s in payload["scopes"]),
        auth_method=str(payload["auth_method"]),
        api_key_id=payload.get("api_key_id") or None,
    )


def require_inference_scope(caller: Identity) -> None:
    # The job samples through /v1 as the caller: a key without the scope would fail there.
    if Scope.INFERENCE not in caller.scopes:
        raise InferenceScopeRequired(
            "Evaluations and A/B runs sample the model as you: this credential lacks the "
            "'inference' scope they need.",
        )


def read(evaluation: Evaluation) -> EvaluationRead:
    sets = [PromptSet.model_validate(s) for s in evaluation.prompt_sets]
    total = max(evaluation.total, 1)
    return EvaluationRead(
        id=evaluation.id,
        model_id=evaluation.model_id,
        model_ref=evaluation.model_ref,
        version_id=evaluation.version_id,
        version_number=evaluation.version_number,
        status=EvaluationStatus(evaluation.status),
        progress=round(min(evaluation.done / total, 1.0), 4),
        done=evaluation.done,
        total=evaluation.total,
        parameters=evaluation.parameters,
        prompt_sets=[prompt_sets.summary(s) for s in sets],
        report=evaluation.report,
        error=evaluation.error,
        created_at=evaluation.created_at,
        started_at=evaluation.started_at,
        finished_at=evaluation.finished_at,
    )


def summary(evaluation: Evaluation) -> EvaluationSummary:
    full = read(evaluation)
    return EvaluationSummary(
        id=full.id,
        model_id=full.model_id,
        model_ref=full.model_ref,
        version_number=full.version_number,
        status=full.status,
        progress=full.progress,
        created_at=full.created_at,
        finished_at=full.finished_at,
    )


def _pinned(model: ModelAccess, wanted: int | None) -> tuple[str, uuid.UUID | None, int | None]:
    """The name the job generates with, pinned to the version evaluated (so activating another
    one mid-run changes nothing), and that version's id and number."""
    if model.source == UsageSource.REMOTE:
        if wanted is not None:
            raise VersionsNotHosted(
                f"{model.ref} is served by an external provider and has no versions here."
            )
        return model.ref, None, None
    version = model.active_version
    if version is None:
        raise ModelNotReady(
            f"{model.ref} has no ready version yet (status: {model.status}); evaluate it once "
            "validation has finished."
        )
    return f"{model.ref.partition('@')[0]}@{version.number}", version.id, version.number


class EvaluationService:
    async def create(
        self,
        session: AsyncSession,
        ctx: InferenceContext,
        caller: Identity,
        model_key: str | uuid.UUID,
        body: EvaluationCreate,
    ) -> EvaluationRead:
        """Check and store the evaluation, and queue its job once the request commits."""
        require_inference_scope(caller)
        settings = ctx.settings
        if body.repeats > settings.evaluation_max_repeats:
            raise UnprocessableEntity(
                f"repeats may be at most {settings.evaluation_max_repeats}.",
                code="repeats_too_large",
            )
        if body.sampling.max_tokens > settings.evaluation_max_tokens:
            raise UnprocessableEntity(
                f"sampling.max_tokens may be at most {settings.evaluation_max_tokens}.",
                code="max_tokens_too_large",
            )
        if (
            body.heldout_text is not None
            and len(body.heldout_text) > settings.evaluation_heldout_max_chars
        ):
            raise UnprocessableEntity(
                f"heldout_text may be at most {settings.evaluation_heldout_max_chars} characters.",
                code="heldout_text_too_long",
            )
        sets = prompt_sets.resolve(
            body.prompt_sets,
            body.custom_sets,
            repeats=body.repeats,
            max_prompts=settings.evaluation_max_prompts,
        )
        if isinstance(model_key, uuid.UUID):
            model = await ctx.models.access_by_id(model_key, caller)
        else:
            model = await ctx.models.access(model_key, caller)
        if (
            body.version is not None
            and model.source != UsageSource.REMOTE
            and (model.active_version is None or model.active_version.number != body.version)
        ):
            # Another ready version than the one served by default (404 if there is none).
            model = await ctx.models.access(f"{model.ref.partition('@')[0]}@{body.version}", caller)
        model_ref, version_id, version_number = _pinned(model, body.version)
        if (
            await repository.count_active(session, caller.user_id)
            >= settings.evaluations_active_per_user
        ):
            raise TooManyEvaluations(
                f"You have {settings.evaluations_active_per_user} evaluations queued or running, "
                "the most allowed; wait for one to finish.",
                retry_after=30,
            )
        evaluation = Evaluation(
            owner_id=caller.user_id,
            model_id=model.id,
            model_ref=model_ref,
            version_id=version_id,
            version_number=version_number,
            status=EvaluationStatus.QUEUED,
            done=0,
            total=prompt_sets.generations(sets, body.repeats),
            parameters={"sampling": body.sampling.model_dump(), "repeats": body.repeats},
            prompt_sets=[s.model_dump(mode="json") for s in sets],
            heldout_text=body.heldout_text,
        )
        session.add(evaluation)
        await session.flush()
        await session.refresh(evaluation)
        # One job id per evaluation: a second enqueue is a no-op in arq.
        enqueue_after_commit(
            session,
            ctx.jobs,
            EVALUATION_JOB,
            str(evaluation.id),
            caller_payload(caller),
            _job_id=f"evaluation:{evaluation.id}",
            _queue_name=INFERENCE_QUEUE,
        )
        return read(evaluation)

    async def owned(
        self, session: AsyncSession, caller: Identity, evaluation_id: uuid.UUID
    ) -> Evaluation:
        evaluation = await repository.get(session, evaluation_id)
        if evaluation is None or evaluation.owner_id != caller.user_id:
            raise EvaluationNotFound("No such evaluation.")
        return evaluation

    async def get(
        self, session: AsyncSession, caller: Identity, evaluation_id: uuid.UUID
    ) -> EvaluationRead:
        return read(await self.owned(session, caller, evaluation_id))

    async def finished(
        self, session: AsyncSession, caller: Identity, evaluation_id: uuid.UUID
    ) -> Evaluation:
        evaluation = await self.owned(session, caller, evaluation_id)
        if evaluation.status != EvaluationStatus.COMPLETED or evaluation.report is None:
            raise EvaluationNotFinished(
                f"Evaluation {evaluation.id} is {evaluation.status}; its report is there once "
                "it has completed."
            )
        return evaluation

    async def page(
        self,
        session: AsyncSession,
        caller: Identity,
        *,
        model_id: uuid.UUID | None,
        cursor: str | None,
        limit: int,
    ) -> EvaluationPage:
        items, next_cursor = await repository.page_owned(
            session, caller.user_id, model_id=model_id, cursor=cursor, limit=limit
        )
        return EvaluationPage(items=[summary(e) for e in items], next_cursor=next_cursor)

    async def compare(
        self, session: AsyncSession, caller: Identity, a: uuid.UUID, b: uuid.UUID
    ) -> EvaluationComparison:
        if a == b:
            raise UnprocessableEntity(
                "Compare two different evaluations (a and b are the same).", code="same_evaluation"
            )
        first = await self.finished(session, caller, a)
        second = await self.finished(session, caller, b)
        assert first.report is not None
        assert second.report is not None
        return EvaluationComparison(
            a=summary(first),
            b=summary(second),
            metrics=compare.compare(first.report, second.report),
        )


evaluation_service = EvaluationService()


async def _still_running(ctx: InferenceContext, evaluation_id: uuid.UUID) -> bool:
    async with session_scope(ctx.sessionmaker) as session:
        evaluation = await repository.get(session, evaluation_id)
        return evaluation is not None and evaluation.status in (
            EvaluationStatus.QUEUED,
            EvaluationStatus.RUNNING,
        )


async def progress_events(
    ctx: InferenceContext, evaluation: EvaluationRead, after: str
) -> AsyncIterator[ServerSentEvent]:
    """The evaluation's events after `after`, live until `done`. A finished evaluation whose
    events expired gets one `done` event from its row (no id: nothing to resume after)."""
    key = progress.events_key(KIND, evaluation.id)
    if not await ctx.redis.exists(key) and evaluation.status in (
        EvaluationStatus.COMPLETED,
        EvaluationStatus.FAILED,
    ):
        total = evaluation.total
        yield ServerSentEvent(
            event=progress.DONE,
            data=ProgressEvent(
                status=evaluation.status,
                stage=str(evaluation.status),
                done=evaluation.done,
                total=total,
                percent=round(100.0 * evaluation.done / total, 2) if total else 100.0,
                error=evaluation.error,
            ),
        )
        return

    async def running() -> bool:
        return await _still_running(ctx, evaluation.id)

    async for stored in progress.follow(ctx.redis, key, after, still_running=running):
        yield ServerSentEvent(raw_data=stored.data, event=stored.event, id=stored.id)
