"""The prompt lab: analysis and rewrites answer within the request (the model calls go through
`LocalGenerator`, with the caller's access, quota and ledger); A/B runs are jobs of the
inference worker, whose outputs are stored and summarised.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.inference.deps import InferenceContext
from services.inference.evaluations.generator import LocalGenerator
from services.inference.evaluations.service import caller_payload, require_inference_scope
from services.inference.models import ABArm, EvaluationStatus, PromptABRun
from services.inference.prompt_lab import analysis, repository, rewrite
from services.inference.prompt_lab.schemas import (
    ABCreate,
    ABOutputRead,
    ABRunPage,
    ABRunRead,
    ABRunSummary,
    AnalyzeRead,
    AnalyzeRequest,
    Method,
    RewriteRead,
    RewriteRequest,
)
from services.inference.queue import INFERENCE_QUEUE
from shared.auth.identity import Identity
from shared.errors import NotFound, UnprocessableEntity
from shared.jobs import enqueue_after_commit

AB_JOB = "run_ab_test"


class ABRunNotFound(NotFound):
    code = "ab_run_not_found"


def _check_prompt(ctx: InferenceContext, *prompts: str) -> None:
    limit = ctx.settings.prompt_lab_max_chars
    for prompt in prompts:
        if len(prompt) > limit:
            raise UnprocessableEntity(
                f"A prompt may be at most {limit} characters; this one has {len(prompt)}.",
                code="prompt_too_long",
            )


def _check_tokens(ctx: InferenceContext, max_tokens: int) -> None:
    if max_tokens > ctx.settings.evaluation_max_tokens:
        raise UnprocessableEntity(
            f"sampling.max_tokens may be at most {ctx.settings.evaluation_max_tokens}.",
            code="max_tokens_too_large",
        )


class PromptLabService:
    async def analyze(
        self, ctx: InferenceContext, caller: Identity, body: AnalyzeRequest
    ) -> AnalyzeRead:
        _check_prompt(ctx, body.prompt)
        _check_tokens(ctx, body.sampling.max_tokens)
        methods = set(body.methods)
        needs_model = methods & {Method.COUNTERFACTUAL, Method.JUDGE}
        if needs_model and body.model is None:
            raise UnprocessableEntity(
                "The counterfactual and judge methods run on a model: name one in `model`, or "
                "ask only for the lexicon method.",
                code="model_required",
            )
        generator = LocalGenerator(ctx)
        sampling = body.sampling.model_dump(exclude_none=True)
        lexicon = analysis.lexicon_method(body.prompt) if Method.LEXICON in methods else None
        counterfactual = judge = None
        if body.model is not None and Method.COUNTERFACTUAL in methods:
            counterfactual = await analysis.counterfactual_method(
                generator, caller, body.model, body.prompt, sampling
            )
        if body.model is not None and Method.JUDGE in methods:
            judge = await analysis.judge_method(
                generator, caller, body.model, body.prompt, sampling
            )
        suggestion = rewrite.rule_based(body.prompt)
        return AnalyzeRead(
            prompt=body.prompt,
            flagged=any(r is not None and r.flagged for r in (lexicon, counterfactual, judge)),
            lexicon=lexicon,
            counterfactual=counterfactual,
            judge=judge,
            suggestions=[suggestion] if suggestion else [],
        )

    async def rewrite(
        self, ctx: InferenceContext, caller: Identity, body: RewriteRequest
    ) -> RewriteRead:
        _check_prompt(ctx, body.prompt)
        _check_tokens(ctx, body.sampling.max_tokens)
        suggestions = []
        rule = rewrite.rule_based(body.prompt)
        if rule is not None:
            suggestions.append(rule)
        if body.model is not None:
            answer = await LocalGenerator(ctx).answer(
                caller,
                body.model,
                rewrite.rewrite_instruction(body.prompt),
                body.sampling.model_dump(exclude_none=True),
            )
            suggestions.append(rewrite.model_rewrite(body.model, answer.text))
        return RewriteRead(prompt=body.prompt, suggestions=suggestions)

    async def create_ab(
        self, session: AsyncSession, ctx: InferenceContext, caller: Identity, body: ABCreate
    ) -> ABRunRead:
        """Check the run (limits, every model usable by the caller), store it, queue its job."""
        require_inference_scope(caller)
        settings = ctx.settings
        _check_prompt(ctx, body.original, body.rewrite)
        _check_tokens(ctx, body.sampling.max_tokens)
        if body.samples > settings.prompt_lab_max_samples:
            raise UnprocessableEntity(
                f"samples may be at most {settings.prompt_lab_max_samples}.",
                code="samples_too_large",
            )
        if len(body.models) > settings.prompt_lab_max_models:
            raise UnprocessableEntity(
                f"An A/B run compares at most {settings.prompt_lab_max_models} models.",
                code="too_many_models",
            )
        if len(set(body.models)) != len(body.models):
            raise UnprocessableEntity("Name each model once.", code="duplicate_models")
        refs = [(await ctx.models.access(ref, caller)).ref for ref in body.models]
        run = PromptABRun(
            owner_id=caller.user_id,
            original=body.original,
            rewrite=body.rewrite,
            models=refs,
            samples=body.samples,
            parameters={"sampling": body.sampling.model_dump()},
            status=EvaluationStatus.QUEUED,
        )
        session.add(run)
        await session.flush()
        await session.refresh(run)
        enqueue_after_commit(
            session,
            ctx.jobs,
            AB_JOB,
            str(run.id),
            caller_payload(caller),
            _job_id=f"prompt-ab:{run.id}",
            _queue_name=INFERENCE_QUEUE,
        )
        return await self.read(session, run)

    async def read(self, session: AsyncSession, run: PromptABRun) -> ABRunRead:
        outputs = await repository.outputs(session, run.id)
        return ABRunRead(
            id=run.id,
            status=EvaluationStatus(run.status),
            original=run.original,
            rewrite=run.rewrite,
            models=run.models,
            samples=run.samples,
            parameters=run.parameters,
            summary=run.summary,
            error=run.error,
            created_at=run.created_at,
            finished_at=run.finished_at,
            outputs=[
                ABOutputRead(
                    model=o.model_ref,
                    arm=ABArm(o.arm),
                    sample=o.sample,
                    text=o.text,
                    prompt_tokens=o.prompt_tokens,
                    completion_tokens=o.completion_tokens,
                    latency_ms=o.latency_ms,
                    metrics=o.metrics,
                )
                for o in outputs
            ],
        )

    async def get(self, session: AsyncSession, caller: Identity, run_id: uuid.UUID) -> ABRunRead:
        run = await repository.get(session, run_id)
        if run is None or run.owner_id != caller.user_id:
            raise ABRunNotFound("No such A/B run.")
        return await self.read(session, run)

    async def page(
        self, session: AsyncSession, caller: Identity, *, cursor: str | None, limit: int
    ) -> ABRunPage:
        runs, next_cursor = await repository.page_owned(
            session, caller.user_id, cursor=cursor, limit=limit
        )
        return ABRunPage(
            items=[
                ABRunSummary(
                    id=r.id,
                    status=EvaluationStatus(r.status),
                    models=r.models,
                    samples=r.samples,
                    created_at=r.created_at,
                    finished_at=r.finished_at,
                )
                for r in runs
            ],
            next_cursor=next_cursor,
        )


prompt_lab_service = PromptLabService()
