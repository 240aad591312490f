"""Your notifications: list, unread count, mark read, muted kinds, and the live stream."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query

from services.feed.deps import FeedDep
from services.feed.notifications import live
from services.feed.notifications.schemas import (
    MarkedRead,
    NotificationPage,
    NotificationRead,
    Preferences,
    PreferencesUpdate,
    UnreadCount,
)
from services.feed.notifications.service import notification_service, read_notification
from shared.auth.identity import CurrentUser
from shared.db import SessionDep
from shared.fields import JSON_INT_MAX
from shared.pagination import CursorQuery, LimitQuery
from shared.redis_client import RedisDep
from shared.sse import (
    STREAM_ID_PATTERN,
    EventStreamResponse,
    event_stream,
    event_stream_responses,
)

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])
# Shorter than the Redis client's socket timeout, so a blocking read never trips it.
_BLOCK_MS = 2000
LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        pattern=STREAM_ID_PATTERN,
        description="The `id` of the last event received (like `1733450000000-0`): the stream "
        "resumes after it. Without it the stream starts with the next notification.",
    ),
]


@router.get("", response_model=NotificationPage)
async def list_notifications(
    user: CurrentUser,
    session: SessionDep,
    unread: Annotated[bool, Query(description="Only notifications not read yet.")] = False,
    cursor: CursorQuery = None,
    limit: LimitQuery = 20,
) -> NotificationPage:
    """Your notifications, newest first."""
    items, next_cursor = await notification_service.page(
        session, user, unread=unread, cursor=cursor, limit=limit
    )
    return NotificationPage(items=[read_notification(n) for n in items], next_cursor=next_cursor)


@router.get("/unread-count", response_model=UnreadCount)
async def unread_count(user: CurrentUser, session: SessionDep) -> UnreadCount:
    """How many of your notifications are unread."""
    return UnreadCount(unread=await notification_service.unread_count(session, user))


@router.post("/read-all", response_model=MarkedRead)
async def mark_all_read(user: CurrentUser, session: SessionDep) -> MarkedRead:
    """Mark every notification of yours read."""
    return MarkedRead(marked=await notification_service.mark_all_read(session, user))


@router.get("/preferences", response_model=Preferences)
async def preferences(user: CurrentUser, session: SessionDep) -> Preferences:
    """The kinds you muted (none of those is made for you), and every kind there is."""
    return await notification_service.preferences(session, user.user_id)


@router.put("/preferences", response_model=Preferences)
async def set_preferences(
    body: PreferencesUpdate, user: CurrentUser, session: SessionDep
) -> Preferences:
    """Mute exactly the kinds listed; every other kind is delivered."""
    return await notification_service.set_preferences(session, user, body)


@router.get(
    "/stream",
    response_model=None,
    responses=event_stream_responses(
        NotificationRead,
        description="Server-sent events: `notification` events (a NotificationRead each) as "
        "they are made. Send `Last-Event-ID` to resume after the last event you received.",
    ),
)
async def stream(
    user: CurrentUser, redis: RedisDep, ctx: FeedDep, last_event_id: LastEventId = None
) -> EventStreamResponse:
    """Your notifications live, resumable with Last-Event-ID."""
    after = await live.start_id(redis, user.user_id, last_event_id)
    return event_stream(
        live.follow(redis, user.user_id, after, block_ms=_BLOCK_MS),
        heartbeat=ctx.settings.stream_heartbeat_seconds,
        lifetime=ctx.settings.stream_lifetime_seconds,
    )


@router.post("/{notification_id}/read", response_model=NotificationRead)
async def mark_read(
    notification_id: Annotated[int, Path(ge=1, le=JSON_INT_MAX)],
    user: CurrentUser,
    session: SessionDep,
) -> NotificationRead:
    """Mark one notification of yours read."""
    return read_notification(await notification_service.mark_read(session, user, notification_id))
