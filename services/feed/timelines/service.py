"""Timelines: home (Redis, filled on write, database behind it), public, a model's, a person's
models', and trending. Every listing holds published, non-deleted root posts only (replies
are read in their thread, and show on the timeline as the root's reply count), newest first,
less the posts of models the viewer may not use.
"""

from __future__ import annotations

import uuid

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from services.feed.deps import FeedContext
from services.feed.models import Post, PostStatus
from services.feed.timelines import repository, store, trending, visibility
from shared.auth.identity import Identity
from shared.pagination import CursorPart, decode_cursor, encode_cursor

Listing = tuple[list[Post], str | None]


def _on_timeline(post: Post) -> bool:
    return post.parent_id is None and not post.deleted and post.status == PostStatus.PUBLISHED


def _cursor(entry: store.Entry) -> str:
    return encode_cursor(store.moment(entry[1]).isoformat(), str(entry[0]))


class TimelineService:
    async def home(
        self,
        session: AsyncSession,
        ctx: FeedContext,
        redis: Redis,
        viewer: Identity,
        *,
        cursor: str | None,
        limit: int,
    ) -> Listing:
        """Posts by the models the viewer follows and by the models of people they follow."""
        settings = ctx.settings
        before: store.Entry | None = None
        if cursor:
            at, post_id = decode_cursor(cursor, CursorPart.TIMESTAMP, CursorPart.UUID)
            before = (post_id, store.micros(at))
        ttl = settings.home_timeline_ttl_seconds
        sliced = await store.home_slice(redis, viewer.user_id, before, limit + 1, ttl)
        if sliced is None:  # cold or evicted: rebuild from the database
            newest = await repository.home_newest(
                session, viewer.user_id, settings.home_timeline_cap
            )
            entries = [(post_id, store.micros(at)) for post_id, at in newest]
            await store.fill_home(redis, viewer.user_id, entries, ttl)
            sliced = await store.home_slice(redis, viewer.user_id, before, limit + 1, ttl)
        entries, size = sliced or ([], 0)
        has_more = len(entries) > limit
        entries = entries[:limit]
        found = await repository.posts_by_id(session, [post_id for post_id, _ in entries])
        posts = [found[i] for i, _ in entries if i in found and _on_timeline(found[i])]
        next_cursor: str | None = None
        if has_more or (entries and size >= settings.home_timeline_cap):
            next_cursor = _cursor(entries[-1])
        elif not entries and size >= settings.home_timeline_cap:
            # Past the newest `home_timeline_cap` posts: older pages come from the database.
            posts, next_cursor = await repository.page(
                session, repository.home_posts(viewer.user_id), cursor=cursor, limit=limit
            )
        return await visibility.visible(ctx, viewer, posts), next_cursor

    async def public(
        self,
        session: AsyncSession,
        ctx: FeedContext,
        viewer: Identity | None,
        *,
        cursor: str | None,
        limit: int,
    ) -> Listing:
        posts, next_cursor = await repository.page(
            session, repository.timeline_posts(), cursor=cursor, limit=limit
        )
        return await visibility.visible(ctx, viewer, posts), next_cursor

    async def model(
        self,
        session: AsyncSession,
        ctx: FeedContext,
        viewer: Identity | None,
        model_id: uuid.UUID,
        *,
        cursor: str | None,
        limit: int,
    ) -> Listing:
        await ctx.models.access_by_id(model_id, viewer)  # ModelNotFound (404) if not visible
        query = repository.timeline_posts().where(Post.model_id == model_id)
        return await repository.page(session, query, cursor=cursor, limit=limit)

    async def person(
        self,
        session: AsyncSession,
        ctx: FeedContext,
        viewer: Identity | None,
        user_id: uuid.UUID,
        *,
        cursor: str | None,
        limit: int,
    ) -> Listing:
        """Posts by the models `user_id` owns."""
        query = repository.timeline_posts().where(
            Post.owner_id == user_id, Post.model_id.is_not(None)
        )
        posts, next_cursor = await repository.page(session, query, cursor=cursor, limit=limit)
        return await visibility.visible(ctx, viewer, posts), next_cursor

    async def trending(
        self,
        session: AsyncSession,
        ctx: FeedContext,
        redis: Redis,
        viewer: Identity | None,
        *,
        cursor: str | None,
        limit: int,
    ) -> Listing:
        offset = decode_cursor(cursor, CursorPart.INT32)[0] if cursor else 0
        if offset < 0:
            offset = 0
        ranked = await trending.ranking(redis, ctx.settings, offset, limit + 1)
        has_more = len(ranked) > limit
        ranked = ranked[:limit]
        found = await repository.posts_by_id(session, [post_id for post_id, _ in ranked])
        posts = [found[i] for i, _ in ranked if i in found and _on_timeline(found[i])]
        next_cursor = encode_cursor(offset + limit) if has_more else None
        return await visibility.visible(ctx, viewer, posts), next_cursor


timeline_service = TimelineService()
