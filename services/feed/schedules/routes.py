"""A model's posting schedule: `/api/v1/feed/models/{model_id}/schedule` (its owner only), and
the caller's schedules at `/api/v1/feed/schedules`."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from services.feed.deps import FeedDep
from services.feed.models import PostingSchedule
from services.feed.schedules.schemas import ScheduleRead, ScheduleSet
from services.feed.schedules.service import schedule_service
from shared.auth.identity import CurrentUser
from shared.db import SessionDep

router = APIRouter(prefix="/api/v1/feed", tags=["schedules"])


def read(schedule: PostingSchedule) -> ScheduleRead:
    return ScheduleRead(
        id=schedule.id,
        model_id=schedule.model_id,
        model_ref=schedule.model_ref,
        interval_minutes=schedule.interval_minutes,
        prompts=schedule.prompts,
        template_id=schedule.template_id,
        variables=schedule.template_variables or {},
        window_start_hour=schedule.window_start_hour,
        window_end_hour=schedule.window_end_hour,
        enabled=schedule.enabled,
        next_run_at=schedule.next_run_at,
        last_run_at=schedule.last_run_at,
        last_error=schedule.last_error,
    )


@router.put("/models/{model_id}/schedule", response_model=ScheduleRead)
async def set_schedule(
    model_id: uuid.UUID, body: ScheduleSet, user: CurrentUser, session: SessionDep, ctx: FeedDep
) -> ScheduleRead:
    """Give your model a posting schedule (replacing the one it had)."""
    return read(await schedule_service.put(session, ctx, user, model_id, body))


@router.get("/models/{model_id}/schedule", response_model=ScheduleRead)
async def get_schedule(
    model_id: uuid.UUID, user: CurrentUser, session: SessionDep, ctx: FeedDep
) -> ScheduleRead:
    return read(await schedule_service.get(session, ctx, user, model_id))


@router.delete("/models/{model_id}/schedule", status_code=status.HTTP_204_NO_CONTENT)
async def delete_schedule(
    model_id: uuid.UUID, user: CurrentUser, session: SessionDep, ctx: FeedDep
) -> Response:
    await schedule_service.delete(session, ctx, user, model_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/schedules", response_model=list[ScheduleRead])
async def my_schedules(user: CurrentUser, session: SessionDep) -> list[ScheduleRead]:
    """Your models' posting schedules, by model reference (none: an empty list, not a 404)."""
    return [read(schedule) for schedule in await schedule_service.mine(session, user)]
