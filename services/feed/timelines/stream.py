"""The live feed: new posts for the caller's home timeline as they are published, live like
and reply counts of the posts on it, and the ids of those deleted.

It reads the `post` event stream (`post.published`, `post.liked`, `post.unliked`,
`post.deleted`, relayed from the outbox) and keeps what concerns the caller: a root post by a
model they follow or by a model of a person they follow (and may see), or a like, unlike, reply
or deleted reply of such a post (its new counts). Each event's id is its stream id, so a client
that reconnects with `Last-Event-ID` resumes right after the last event it got: nothing lost,
nothing twice.

The streams are read once per process by the live hub (live_hub.py), which hands each entry
to every open live feed. The follow sets are held in memory; a follow or unfollow by the caller
(of a model, or of a person: projected from accounts) is announced on the follow-changes stream
(follows/changes.py), which the hub passes to the caller's feeds only, so it is applied before
the next post; changes of other people cost this stream nothing. The sets are also re-read
every `_REFRESH_SECONDS`, in case an announcement was missed.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from fastapi.sse import ServerSentEvent
from redis.asyncio import Redis

from services.feed.deps import FeedContext
from services.feed.follows import repository as follows
from services.feed.models import Post, PostStatus
from services.feed.posts import repository as posts
from services.feed.posts.routes import read
from services.feed.timelines import live_hub, visibility
from services.feed.timelines.schemas import PostCounts, PostRemoved
from shared.auth.identity import Identity
from shared.db import session_scope
from shared.errors import UnprocessableEntity
from shared.events import Event, stream_for
from shared.sse import is_stream_id

T = TypeVar("T")
POST_STREAM = stream_for("post.published")
# The events of the post stream a live feed turns into `post` or `counts` events.
_LIVE_TYPES = frozenset({"post.published", "post.liked", "post.unliked", "post.deleted"})
_REFRESH_SECONDS = 30.0


class InvalidLastEventId(UnprocessableEntity):
    code = "invalid_last_event_id"


def start_id(last_event_id: str | None) -> str | None:
    """The stream id to read after (None: from now on); a malformed one is a 422."""
    if last_event_id is None or last_event_id == "":
        return None
    if not is_stream_id(last_event_id):
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

    def changed(self) -> None:
        """The viewer's follows changed: re-read them before the next event."""
        self._loaded = 0.0

    async def refresh(self) -> None:
        if time.monotonic() - self._loaded < _REFRESH_SECONDS:
            return
        async with session_scope(self._ctx.sessionmaker) as session:
            self.models, self.people = await follows.followed_sources(session, self._viewer.user_id)
        self._loaded = time.monotonic()

    def follows(self, post: Post) -> bool:
        return self.follows_ids(post.model_id, post.owner_id)

    def follows_ids(self, model_id: Any, owner_id: Any) -> bool:
        if not model_id:
            return False
        return uuid.UUID(str(model_id)) in self.models or (
            owner_id is not None and uuid.UUID(str(owner_id)) in self.people
        )


async def _post(ctx: FeedContext, post_id: Any) -> Post | None:
    async with session_scope(ctx.sessionmaker) as session:
        return await posts.get_post(session, uuid.UUID(str(post_id)))


class _EventPosts:
    """The post each event is about, read once per process however many live feeds want it: a
    post published to the open streams of 200 followers costs one query, not 200. Keyed by the
    event (not the post), so a counts event reads the counts as they were after it."""

    def __init__(self, size: int = 2048) -> None:
        self._reads: OrderedDict[str, asyncio.Task[Post | None]] = OrderedDict()
        self._size = size

    async def get(self, ctx: FeedContext, event_id: str, post_id: Any) -> Post | None:
        read = self._reads.get(event_id)
        if read is None:
            read = asyncio.create_task(_post(ctx, post_id))
            self._reads[event_id] = read
            while len(self._reads) > self._size:
                self._reads.popitem(last=False)
        try:
            # Shielded: one client going away must not cancel the read the others wait for.
            return await asyncio.shield(read)
        except Exception:
            self._reads.pop(event_id, None)  # a failed read is tried again by the next one
            raise


_event_posts = _EventPosts()


class _Shared:
    """What every open live feed makes alike from one event (the parsed event, a post's JSON),
    made once per process: 200 feeds receiving one post parse and encode it once, not 200
    times."""

    def __init__(self, size: int = 4096) -> None:
        self._items: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._size = size

    def get(self, kind: str, event_id: str, make: Callable[[], T]) -> T:
        key = (kind, event_id)
        if key in self._items:
            value: T = self._items[key]
            return value
        made = self._items[key] = make()
        while len(self._items) > self._size:
            self._items.popitem(last=False)
        return made


_shared = _Shared()


async def _event_for(
    ctx: FeedContext, viewer: Identity, audience: _Audience, event: Event
) -> ServerSentEvent | None:
    payload = event.payload
    # The payload names the model and its owner: what the caller does not follow is dropped
    # before anything is read.
    if event.type == "post.published" and not payload.get("parent_id"):
        if payload.get("author_kind") != "model":
            return None
        target, kind = payload["post_id"], "post"
        author = (payload.get("model_id"), payload.get("owner_id"))
    elif event.type == "post.deleted" and not payload.get("parent_id"):
        # A deleted root post leaves the timelines it was on; followers who may see the model
        # are told its id (nothing else of it is read).
        model_id, owner_id = payload.get("model_id"), payload.get("owner_id")
        if not audience.follows_ids(model_id, owner_id):
            return None
        model = uuid.UUID(str(model_id))
        if model not in await visibility.visible_models(ctx, viewer, {model}):
            return None
        removed = PostRemoved(post_id=payload["post_id"])
        return ServerSentEvent(event="removed", id=event.id, data=removed)
    elif event.type in ("post.published", "post.deleted"):
        # A reply published, or a published one deleted, changes its parent's reply count.
        if event.type == "post.deleted" and not payload.get("uncounted"):
            return None
        target, kind = payload["parent_id"], "counts"
        author = (payload.get("parent_model_id"), payload.get("parent_owner_id"))
    else:  # a like or an unlike
        target, kind = payload["post_id"], "counts"
        author = (payload.get("model_id"), payload.get("owner_id"))
    if not audience.follows_ids(*author):
        return None
    post = await _event_posts.get(ctx, event.id, target)
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
        body = _shared.get("post", event.id, lambda: read(post).model_dump_json())
        return ServerSentEvent(event="post", id=event.id, raw_data=body)
    # The counts this event left (recorded with it); the post's own for an event recorded
    # before events carried them.
    left = payload.get("counts") or {"like_count": post.like_count, "reply_count": post.reply_count}
    counts = PostCounts(post_id=post.id, **left)
    return ServerSentEvent(event="counts", id=event.id, data=counts)


async def live_feed(
    ctx: FeedContext, redis: Redis, viewer: Identity, after: str | None
) -> AsyncIterator[ServerSentEvent]:
    audience = _Audience(ctx, viewer)
    if after is None:
        newest = await redis.xrevrange(POST_STREAM, count=1)
        after = live_hub.text(newest[0][0]) if newest else "0-0"
    yield ServerSentEvent(event="ready", id=after, data={"resume_from": after})
    subscription = live_hub.Subscription(redis, POST_STREAM, str(viewer.user_id), audience.changed)
    async with subscription:
        # Read once subscribed: a follow change from here on marks the sets stale.
        await audience.refresh()
        async for stream_id, fields in subscription.entries_after(after):
            parse = functools.partial(Event.from_fields, POST_STREAM, stream_id, fields)
            event = _shared.get("event", stream_id, parse)
            if event.type not in _LIVE_TYPES:
                continue
            await audience.refresh()
            sent = await _event_for(ctx, viewer, audience, event)
            if sent is not None:
                yield sent
