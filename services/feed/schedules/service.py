"""Posting schedules: owners set them; the worker's cron posts for each due one.

Each run posts the next prompt of the list (or the prompt the schedule's template renders to,
rendered by the inference service's API as the owner at each run, so an edited template is
used from its next run) through the same path as `POST /api/v1/posts` (the model's daily cap, a
generation job), as the model's owner, with an idempotency key made of the schedule and its run
time: a run retried after a crash finds its post. A run that fails (the cap is reached, the
model is not ready, the template no longer renders with the variables) is recorded in
`last_error` and the schedule moves on to its next time; a model or a template that is gone or
no longer usable by its owner disables it.

A template schedule is rendered once when it is saved, so one that cannot run (a template the
owner may not use: 404; missing or unknown variables: 422 naming them) is refused then.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.feed.deps import FeedContext
from services.feed.models import PostingSchedule
from services.feed.posts.service import post_service
from services.feed.schedules.schemas import PROMPT_MAX_CHARS, ScheduleSet
from services.feed.timelines import store
from shared.auth.identity import Identity, Role, scopes_for
from shared.db import utcnow
from shared.errors import Forbidden, LLMNetError, NotFound, UnprocessableEntity
from shared.models_client import ModelNotFound

logger = logging.getLogger("llmnet.feed.schedules")


class ScheduleNotFound(NotFound):
    code = "schedule_not_found"


class IntervalTooShort(UnprocessableEntity):
    code = "interval_too_short"


class RenderedPromptTooLong(UnprocessableEntity):
    code = "rendered_prompt_too_long"


def in_window(schedule: PostingSchedule, at: datetime) -> bool:
    start, end, hour = schedule.window_start_hour, schedule.window_end_hour, at.hour
    return start <= hour < end if start < end else hour >= start or hour < end


def next_run(schedule: PostingSchedule, after: datetime) -> datetime:
    """The first moment from `after + interval` that is inside the window."""
    candidate = after + timedelta(minutes=schedule.interval_minutes)
    if in_window(schedule, candidate):
        return candidate
    opening = candidate.replace(hour=schedule.window_start_hour, minute=0, second=0, microsecond=0)
    return opening if opening > candidate else opening + timedelta(days=1)


def owner_identity(schedule: PostingSchedule) -> Identity:
    return Identity(
        user_id=schedule.owner_id,
        username=schedule.owner_username,
        role=Role.USER,
        scopes=scopes_for(Role.USER),
        auth_method="jwt",
    )


async def render(
    ctx: FeedContext, owner: Identity, template_id: uuid.UUID, variables: dict[str, str]
) -> str:
    """The template's prompt, rendered by the inference service as `owner`."""
    prompt = await ctx.inference.render_template(owner, template_id, variables)
    if not prompt.strip():
        raise RenderedPromptTooLong(
            "The template renders to an empty prompt with these variables.",
            code="rendered_prompt_empty",
        )
    if len(prompt) > PROMPT_MAX_CHARS:
        raise RenderedPromptTooLong(
            f"The template renders to {len(prompt)} characters; a post's prompt holds at most "
            f"{PROMPT_MAX_CHARS}."
        )
    return prompt


class ScheduleService:
    async def _managed_model(self, ctx: FeedContext, caller: Identity, model_id: uuid.UUID) -> str:
        model = await ctx.models.access_by_id(model_id, caller)  # 404 if not visible
        if model.owner_id != caller.user_id:
            raise Forbidden(
                "Only the model's owner may give it a posting schedule.", code="not_model_owner"
            )
        return model.ref

    async def get(
        self, session: AsyncSession, ctx: FeedContext, caller: Identity, model_id: uuid.UUID
    ) -> PostingSchedule:
        await self._managed_model(ctx, caller, model_id)
        schedule = await session.scalar(
            select(PostingSchedule).where(PostingSchedule.model_id == model_id)
        )
        if schedule is None:
            raise ScheduleNotFound("This model has no posting schedule.")
        return schedule

    async def mine(self, session: AsyncSession, caller: Identity) -> list[PostingSchedule]:
        query = (
            select(PostingSchedule)
            .where(PostingSchedule.owner_id == caller.user_id)
            .order_by(PostingSchedule.model_ref)
        )
        return list(await session.scalars(query))

    async def put(
        self,
        session: AsyncSession,
        ctx: FeedContext,
        caller: Identity,
        model_id: uuid.UUID,
        body: ScheduleSet,
    ) -> PostingSchedule:
        """Set (or replace) the model's schedule; its first run is one interval from now."""
        ref = await self._managed_model(ctx, caller, model_id)
        shortest = ctx.settings.schedule_min_interval_minutes
        if body.interval_minutes < shortest:
            raise IntervalTooShort(f"interval_minutes must be at least {shortest}.")
        if body.template_id is not None:
            await render(ctx, caller, body.template_id, dict(body.variables))
        schedule = await session.scalar(
            select(PostingSchedule).where(PostingSchedule.model_id == model_id).with_for_update()
        )
        if schedule is None:
            schedule = PostingSchedule(model_id=model_id, next_prompt=0)
            session.add(schedule)
        schedule.model_ref = ref
        schedule.owner_id = caller.user_id
        schedule.owner_username = caller.username
        schedule.interval_minutes = body.interval_minutes
        schedule.prompts = list(body.prompts) if body.prompts is not None else None
        schedule.template_id = body.template_id
        schedule.template_variables = dict(body.variables)
        schedule.window_start_hour = body.window_start_hour
        schedule.window_end_hour = body.window_end_hour
        schedule.enabled = body.enabled
        schedule.next_prompt = schedule.next_prompt % len(body.prompts or [""])
        schedule.next_run_at = next_run(schedule, utcnow())
        schedule.last_error = None
        await session.flush()
        return schedule

    async def delete(
        self, session: AsyncSession, ctx: FeedContext, caller: Identity, model_id: uuid.UUID
    ) -> None:
        schedule = await self.get(session, ctx, caller, model_id)
        await session.delete(schedule)

    async def _prompt(self, ctx: FeedContext, owner: Identity, schedule: PostingSchedule) -> str:
        if schedule.prompts:
            return schedule.prompts[schedule.next_prompt % len(schedule.prompts)]
        assert schedule.template_id is not None  # the table's CHECK: prompts or a template
        return await render(ctx, owner, schedule.template_id, schedule.template_variables or {})

    async def due(self, session: AsyncSession, limit: int) -> list[uuid.UUID]:
        query = (
            select(PostingSchedule.id)
            .where(PostingSchedule.enabled.is_(True), PostingSchedule.next_run_at <= utcnow())
            .order_by(PostingSchedule.next_run_at)
            .limit(limit)
        )
        return list(await session.scalars(query))

    async def run(self, session: AsyncSession, ctx: FeedContext, schedule_id: uuid.UUID) -> str:
        """Run one due schedule (locked; a concurrent worker skips it): "posted", "skipped",
        "outside_window", "failed" or "disabled"."""
        schedule = await session.scalar(
            select(PostingSchedule)
            .where(PostingSchedule.id == schedule_id)
            .with_for_update(skip_locked=True)
        )
        now = utcnow()
        if schedule is None or not schedule.enabled or schedule.next_run_at > now:
            return "skipped"
        if not in_window(schedule, now):
            schedule.next_run_at = next_run(
                schedule, now - timedelta(minutes=schedule.interval_minutes)
            )
            return "outside_window"
        key = f"schedule:{schedule.id}:{store.micros(schedule.next_run_at)}"
        owner = owner_identity(schedule)
        outcome = "posted"
        try:
            model = await ctx.models.access_by_id(schedule.model_id, owner)
            if model.status != "ready":
                raise UnprocessableEntity(f"{model.ref} has no ready version to write with.")
            prompt = await self._prompt(ctx, owner, schedule)
            async with session.begin_nested():
                await post_service.scheduled(session, ctx, owner, model, prompt, key)
            schedule.last_error = None
        except ModelNotFound:
            schedule.enabled = False
            schedule.last_error = "The model is gone or its owner may no longer use it."
            return "disabled"
        except NotFound:
            # Only the template lookup answers a 404 besides the model's (ModelNotFound).
            schedule.enabled = False
            schedule.last_error = "The prompt template is gone or its owner may no longer use it."
            return "disabled"
        except LLMNetError as exc:
            schedule.last_error = exc.detail
            outcome = "failed"
        if schedule.prompts:
            schedule.next_prompt = (schedule.next_prompt + 1) % len(schedule.prompts)
        schedule.last_run_at = now
        schedule.next_run_at = next_run(schedule, now)
        return outcome


schedule_service = ScheduleService()
