"""Reading notifications, marking them read, and the kinds each person mutes.

Notifications are made by the feed worker from domain events (producer.py); here they are only
read and marked. Every query is the caller's own: another person's notification is a 404.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.feed.models import Notification, NotificationKind
from services.feed.notifications import repository
from services.feed.notifications.schemas import (
    NotificationRead,
    Preferences,
    PreferencesUpdate,
)
from shared.auth.identity import Identity
from shared.errors import NotFound


class NotificationNotFound(NotFound):
    code = "notification_not_found"


def read_notification(notification: Notification) -> NotificationRead:
    return NotificationRead(
        id=notification.id,
        kind=NotificationKind(notification.kind),
        summary=notification.summary,
        actor_id=notification.actor_id,
        actor_username=notification.actor_username,
        model_id=notification.model_id,
        post_id=notification.post_id,
        payload=notification.payload,
        read=notification.read_at is not None,
        read_at=notification.read_at,
        created_at=notification.created_at,
    )


class NotificationService:
    async def page(
        self,
        session: AsyncSession,
        caller: Identity,
        *,
        unread: bool,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[Notification], str | None]:
        """The caller's notifications, newest first."""
        return await repository.page(
            session, caller.user_id, unread=unread, cursor=cursor, limit=limit
        )

    async def unread_count(self, session: AsyncSession, caller: Identity) -> int:
        return await repository.unread_count(session, caller.user_id)

    async def mark_read(
        self, session: AsyncSession, caller: Identity, notification_id: int
    ) -> Notification:
        notification = await repository.mark_read(session, caller.user_id, notification_id)
        if notification is None:
            raise NotificationNotFound("No such notification.")
        return notification

    async def mark_all_read(self, session: AsyncSession, caller: Identity) -> int:
        return await repository.mark_all_read(session, caller.user_id)

    async def preferences(self, session: AsyncSession, user_id: uuid.UUID) -> Preferences:
        muted = await repository.muted_kinds(session, user_id)
        return Preferences(muted=[NotificationKind(k) for k in muted], kinds=list(NotificationKind))

    async def set_preferences(
        self, session: AsyncSession, caller: Identity, body: PreferencesUpdate
    ) -> Preferences:
        """Mute exactly the kinds given (an empty list unmutes everything)."""
        await repository.set_muted(session, caller.user_id, sorted(set(body.muted)))
        return await self.preferences(session, caller.user_id)


notification_service = NotificationService()
