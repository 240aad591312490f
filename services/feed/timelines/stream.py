"""The live feed: new posts for the caller's home timeline as they are published, and live
like and reply counts of the posts on it.

It reads the `post` event stream (`post.published`, `post.liked`, relayed from the outbox) and
keeps what concerns the caller: a root post by a model they follow or by a model of a person
they follow (and may see), or a like of / reply to such a post. Each event's id is its stream
id, so a client that reconnects with `Last-Event-ID` resumes right after the last event it got:
nothing lost, nothing twice. The follow sets are re-read every `_REFRESH_SECONDS`.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi.sse import ServerSentEvent
from redis.asyncio import Redis

from services.feed.deps import FeedContext
from services.feed.follows import repository as follows
from services.feed.models import Post, PostStatus
from services.feed.posts import repository as posts
from services.feed.posts.routes import read
from services.feed.timelines import visibility
from services.feed.timelines.schemas import PostCounts
from shared.auth.identity import Identity
from shared.db import session_scope
from shared.errors import UnprocessableEntity
from shared.events import Event, stream_for

POST_STREAM = stream_for("post.published")
_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
_REFRESH_SECONDS = 30.0
_BLOCK_MS = 2000  # below the Redis client's socket timeout


class InvalidLastEventId(UnprocessableEntity):
    code = "invalid_last_event_id"


def start_id(last_event_id: str | None) -> str | None:
    """The stream id to read after (None: from now on); a malformed one is a 422."""
    if last_event_id is None or last_event_id == "":
        return None
    if not _STREAM_ID.fullmatch(last_event_id):
        raise InvalidLastEventId(
            "Last-Event-ID must be the id of an event this stream sent, like '1733450000000-0'."
        )
    return last_event_id


class _Audience:
    """What the caller follows, re-read now and then."""

    def __init__(self, ctx: FeedContext, viewer: Identity) -> None:
        self._ctx = ctx
        self._viewer = viewer
        self.models: set[uuid.UUID] = set()
        self.people: set[uuid.UUID] = set()
        self._loaded = 0.0

    async def refresh(self) -> None:
        if time.monotonic() - self._loaded < _REFRESH_SECONDS:
            return
        async with session_scope(self._ctx.sessionmaker) as session:
            self.models, self.people = await follows.followed_sources(session, self._viewer.user_id)
        self._loaded = time.monotonic()

    def follows(self, post: Post) -> bool:
        return post.model_id is not None and (
            post.model_id in self.models or post.owner_id in self.people
        )


async def _post(ctx: FeedContext, post_id: Any) -> Post | None:
    async with session_scope(ctx.sessionmaker) as session:
        return await posts.get_post(session, uuid.UUID(str(post_id)))


async def _event_for(
    ctx: FeedContext, viewer: Identity, audience: _Audience, event: Event
) -> ServerSentEvent | None:
    payload = event.payload
    if event.type == "post.published" and not payload.get("parent_id"):
        if payload.get("author_kind") != "model":
            return None
        post = await _post(ctx, payload["post_id"])
        kind = "post"
    else:
        target = payload.get("parent_id") if event.type == "post.published" else payload["post_id"]
        post = await _post(ctx, target)
        kind = "counts"
    if (
        post is None
        or post.parent_id is not None
        or post.deleted
        or post.status != PostStatus.PUBLISHED
        or not audience.follows(post)
        or not await visibility.visible(ctx, viewer, [post])
    ):
        return None
    if kind == "post":
        return ServerSentEvent(event="post", id=event.id, data=read(post))
    counts = PostCounts(post_id=post.id, like_count=post.like_count, reply_count=post.reply_count)
    return ServerSentEvent(event="counts", id=event.id, data=counts)


async def live_feed(
    ctx: FeedContext, redis: Redis, viewer: Identity, after: str | None
) -> AsyncIterator[ServerSentEvent]:
    audience = _Audience(ctx, viewer)
    await audience.refresh()
    if after is None:
        newest = await redis.xrevrange(POST_STREAM, count=1)
        after = newest[0][0] if newest else "0-0"
    yield ServerSentEvent(event="ready", id=after, data={"resume_from": after})
    while True:
        response = await redis.xread({POST_STREAM: after}, count=100, block=_BLOCK_MS)
        await audience.refresh()
        for _stream, entries in response or []:
            for stream_id, fields in entries:
                after = stream_id
                event = Event.from_fields(POST_STREAM, stream_id, fields)
                if event.type not in ("post.published", "post.liked"):
                    continue
                sent = await _event_for(ctx, viewer, audience, event)
                if sent is not None:
                    yield sent
