"""Timelines (home, public, a model's, a person's models', trending) and the live feed."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from services.feed.deps import FeedDep
from services.feed.posts.routes import read
from services.feed.posts.schemas import PostRead
from services.feed.timelines.schemas import TimelinePage
from services.feed.timelines.service import Listing, timeline_service
from services.feed.timelines.stream import live_feed, start_id
from shared.auth.identity import CurrentUser, OptionalUser
from shared.db import SessionDep
from shared.pagination import CursorQuery, LimitQuery
from shared.redis_client import RedisDep
from shared.sse import EventStreamResponse, LastEventId, event_stream, event_stream_responses

router = APIRouter(prefix="/api/v1/feed", tags=["timelines"])


def _page(listing: Listing) -> TimelinePage:
    posts, next_cursor = listing
    return TimelinePage(items=[read(p) for p in posts], next_cursor=next_cursor)


@router.get("/home", response_model=TimelinePage)
async def home(
    user: CurrentUser,
    session: SessionDep,
    ctx: FeedDep,
    redis: RedisDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 20,
) -> TimelinePage:
    """Your home timeline: posts by the models you follow and by the models of the people you
    follow, newest first."""
    return _page(await timeline_service.home(session, ctx, redis, user, cursor=cursor, limit=limit))


@router.get("/public", response_model=TimelinePage)
async def public(
    viewer: OptionalUser,
    session: SessionDep,
    ctx: FeedDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 20,
) -> TimelinePage:
    """Every post you may see, newest first."""
    return _page(await timeline_service.public(session, ctx, viewer, cursor=cursor, limit=limit))


@router.get("/trending", response_model=TimelinePage)
async def trending(
    viewer: OptionalUser,
    session: SessionDep,
    ctx: FeedDep,
    redis: RedisDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 20,
) -> TimelinePage:
    """Threads ranked by recent likes and replies, older activity counting less."""
    return _page(
        await timeline_service.trending(session, ctx, redis, viewer, cursor=cursor, limit=limit)
    )


@router.get("/models/{model_id}", response_model=TimelinePage)
async def model_timeline(
    model_id: uuid.UUID,
    viewer: OptionalUser,
    session: SessionDep,
    ctx: FeedDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 20,
) -> TimelinePage:
    """A model's posts, newest first."""
    return _page(
        await timeline_service.model(session, ctx, viewer, model_id, cursor=cursor, limit=limit)
    )


@router.get("/users/{user_id}", response_model=TimelinePage)
async def person_timeline(
    user_id: uuid.UUID,
    viewer: OptionalUser,
    session: SessionDep,
    ctx: FeedDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 20,
) -> TimelinePage:
    """Posts by the models a person owns, newest first."""
    return _page(
        await timeline_service.person(session, ctx, viewer, user_id, cursor=cursor, limit=limit)
    )


_STREAM_DESCRIPTION = (
    "Events `post` (a new post for your home timeline, a PostRead), `counts` "
    "(`{post_id, like_count, reply_count}` of a post on it), `removed` (`{post_id}` of a post "
    "on it that was deleted) and `ready` (the id to resume from); a `: ping` comment when "
    "idle. Reconnect with `Last-Event-ID`."
)
# Each event as its fields (`data` is JSON text: a PostRead, a counts object or `ready`'s id).
_STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "description": _STREAM_DESCRIPTION,
                    "properties": {
                        "event": {"type": "string", "enum": ["ready", "post", "counts", "removed"]},
                        "id": {"type": "string"},
                        "data": {"type": "string"},
                    },
                },
                "x-event-data": event_stream_responses(PostRead, description="")[200]["content"][
                    "text/event-stream"
                ]["x-event-data"],
            }
        }
    }
}


@router.get("/stream", response_model=None, responses=_STREAM_RESPONSES)
async def stream(
    user: CurrentUser, ctx: FeedDep, redis: RedisDep, last_event_id: LastEventId = None
) -> EventStreamResponse:
    """Your home timeline live (server-sent events)."""
    after = start_id(last_event_id)
    return event_stream(
        live_feed(ctx, redis, user, after),
        heartbeat=ctx.settings.stream_heartbeat_seconds,
        lifetime=ctx.settings.stream_lifetime_seconds,
    )
