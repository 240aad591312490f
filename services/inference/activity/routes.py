"""Your activity records and whether they are kept; admins: everyone's."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Path, status

from services.inference.activity.schemas import (
    ActivityDeleted,
    ActivityRead,
    ActivitySettingsRead,
    ActivitySettingsUpdate,
)
from services.inference.activity.service import activity_service
from services.inference.models import ActivityAction
from shared.auth.identity import AdminUser, CurrentUser
from shared.db import SessionDep
from shared.fields import Timestamp
from shared.pagination import CursorQuery, LimitQuery, Page

router = APIRouter(prefix="/api/v1/activity", tags=["activity"])
admin_router = APIRouter(prefix="/api/v1/admin/activity", tags=["admin"])

_RECORD_ID = Path(ge=1, le=2**63 - 1, description="A record's id, as listed.")


@router.get("/settings", response_model=ActivitySettingsRead, summary="Is recording on?")
async def get_settings(caller: CurrentUser, session: SessionDep) -> ActivitySettingsRead:
    return await activity_service.settings(session, caller.user_id)


@router.put("/settings", response_model=ActivitySettingsRead, summary="Turn recording on or off")
async def put_settings(
    body: ActivitySettingsUpdate, caller: CurrentUser, session: SessionDep
) -> ActivitySettingsRead:
    return await activity_service.set_recording(session, caller.user_id, body.recording)


@router.get("", response_model=Page[ActivityRead], summary="Your activity records, newest first")
async def list_activity(
    caller: CurrentUser,
    session: SessionDep,
    action: ActivityAction | None = None,
    model_id: uuid.UUID | None = None,
    since: Timestamp | None = None,
    until: Timestamp | None = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[ActivityRead]:
    return await activity_service.page(
        session,
        user_id=caller.user_id,
        action=action,
        model_id=model_id,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )


@router.delete("", response_model=ActivityDeleted, summary="Delete all your activity records")
async def delete_all_activity(caller: CurrentUser, session: SessionDep) -> ActivityDeleted:
    return ActivityDeleted(deleted=await activity_service.delete_all(session, caller.user_id))


# `:int`: the path only matches numbers, so `/settings` is never taken for a record.
@router.delete(
    "/{record_id:int}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete one activity record",
)
async def delete_activity(
    caller: CurrentUser, session: SessionDep, record_id: int = _RECORD_ID
) -> None:
    await activity_service.delete(session, caller.user_id, record_id)


@admin_router.get("", response_model=Page[ActivityRead], summary="Everyone's activity records")
async def admin_list_activity(
    admin: AdminUser,
    session: SessionDep,
    user_id: uuid.UUID | None = None,
    action: ActivityAction | None = None,
    model_id: uuid.UUID | None = None,
    since: Timestamp | None = None,
    until: Timestamp | None = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[ActivityRead]:
    return await activity_service.page(
        session,
        user_id=user_id,
        action=action,
        model_id=model_id,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )
