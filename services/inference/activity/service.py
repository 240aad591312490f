"""Activity records: the platform instructions a person gave (conversation created, message
sent, regenerated, model switched, template used, exported, deleted).

Recording is on by default: the records are the person's own history of what they asked the
platform to do (and what admins moderate with), so a new account starts with it, as a chat
history starts on. Anyone can turn it off (`PUT /api/v1/activity/settings`); from then on
`record` writes nothing for them, and they can delete what was recorded before, one record or
all of it. Turning it back on does not bring back what was missed.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.inference.activity import repository
from services.inference.activity.schemas import ActivityRead, ActivitySettingsRead
from services.inference.models import ActivityAction, ActivityRecord, ActivitySetting
from shared.errors import NotFound
from shared.pagination import Page

RECORDING_DEFAULT = True


class ActivityRecordNotFound(NotFound):
    code = "activity_record_not_found"


class ActivityService:
    async def recording(self, session: AsyncSession, user_id: uuid.UUID) -> bool:
        setting = await repository.get_setting(session, user_id)
        return RECORDING_DEFAULT if setting is None else setting.recording

    async def record(
        self,
        session: AsyncSession,
        user_id: uuid.UUID,
        action: ActivityAction,
        *,
        model_id: uuid.UUID | None = None,
        conversation_id: uuid.UUID | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Record `action` for `user_id` in the caller's transaction (nothing when they turned
        recording off): one statement, since it runs on every turn."""
        await repository.add_if_recording(
            session,
            ActivityRecord(
                user_id=user_id,
                action=ActivityAction(action),
                model_id=model_id,
                conversation_id=conversation_id,
                details=details or {},
            ),
            default=RECORDING_DEFAULT,
        )

    async def settings(self, session: AsyncSession, user_id: uuid.UUID) -> ActivitySettingsRead:
        return ActivitySettingsRead(recording=await self.recording(session, user_id))

    async def set_recording(
        self, session: AsyncSession, user_id: uuid.UUID, recording: bool
    ) -> ActivitySettingsRead:
        setting = await repository.get_setting(session, user_id)
        if setting is None:
            session.add(ActivitySetting(user_id=user_id, recording=recording))
        else:
            setting.recording = recording
        await session.flush()
        return ActivitySettingsRead(recording=recording)

    async def page(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID | None,
        action: ActivityAction | None,
        model_id: uuid.UUID | None,
        since: datetime | None,
        until: datetime | None,
        cursor: str | None,
        limit: int,
    ) -> Page[ActivityRead]:
        """Records newest first; `user_id` None means everyone's (admins only get here so).
        The range is `since <= created_at < until` (one that ends before it starts is empty)."""
        conditions = repository.record_filter(
            user_id=user_id, action=action, model_id=model_id, since=since, until=until
        )
        rows, next_cursor = await repository.page(session, conditions, cursor=cursor, limit=limit)
        return Page(items=[ActivityRead.model_validate(r) for r in rows], next_cursor=next_cursor)

    async def delete(self, session: AsyncSession, user_id: uuid.UUID, record_id: int) -> None:
        if not await repository.delete_one(session, user_id, record_id):
            raise ActivityRecordNotFound("No such activity record.")

    async def delete_all(self, session: AsyncSession, user_id: uuid.UUID) -> int:
        return await repository.delete_all(session, user_id)


activity_service = ActivityService()
