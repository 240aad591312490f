"""Follows of models (owned here) and of people (projected from accounts' events).

A new follow of a model records `model.followed` for notifications. Either kind of follow
changes what belongs on the follower's home timeline, so after the commit their cached one is
dropped (rebuilt from the database on their next read) and the change is announced to their
open live feeds (follows/changes.py), which apply it within a moment.
"""

from __future__ import annotations

import uuid

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from services.feed.deps import FeedContext
from services.feed.follows import changes, repository
from services.feed.follows.schemas import ModelFollowState
from services.feed.timelines import store
from shared.auth.identity import Identity
from shared.db import after_commit
from shared.events import Event, record_event


class FollowService:
    async def model_state(
        self,
        session: AsyncSession,
        ctx: FeedContext,
        viewer: Identity | None,
        model_id: uuid.UUID,
    ) -> ModelFollowState:
        await ctx.models.access_by_id(model_id, viewer)  # ModelNotFound (404) if not visible
        following = viewer is not None and await repository.follows_model(
            session, viewer.user_id, model_id
        )
        count = await repository.model_followers_count(session, model_id)
        return ModelFollowState(model_id=model_id, following=following, followers_count=count)

    async def follow_model(
        self,
        session: AsyncSession,
        ctx: FeedContext,
        redis: Redis,
        caller: Identity,
        model_id: uuid.UUID,
    ) -> ModelFollowState:
        model = await ctx.models.access_by_id(model_id, caller)
        if await repository.add_model_follow(session, caller.user_id, model.id):
            record_event(
                session,
                "model.followed",
                {
                    "model_id": str(model.id),
                    "owner_id": str(model.owner_id),
                    "follower_id": str(caller.user_id),
                    "follower_username": caller.username,
                },
                source="feed",
            )
            self._rebuild_after_commit(session, redis, caller.user_id)
        count = await repository.model_followers_count(session, model.id)
        return ModelFollowState(model_id=model.id, following=True, followers_count=count)

    async def unfollow_model(
        self,
        session: AsyncSession,
        ctx: FeedContext,
        redis: Redis,
        caller: Identity,
        model_id: uuid.UUID,
    ) -> ModelFollowState:
        await ctx.models.access_by_id(model_id, caller)
        if await repository.remove_model_follow(session, caller.user_id, model_id):
            self._rebuild_after_commit(session, redis, caller.user_id)
        count = await repository.model_followers_count(session, model_id)
        return ModelFollowState(model_id=model_id, following=False, followers_count=count)

    async def project_person_follow(
        self, session: AsyncSession, redis: Redis, event: Event
    ) -> None:
        """Apply accounts' `user.followed` / `user.unfollowed` (idempotent: replays are no-ops)."""
        follower = uuid.UUID(str(event.payload["follower_id"]))
        followee = uuid.UUID(str(event.payload["followee_id"]))
        if event.type == "user.followed":
            changed = await repository.add_person_follow(session, follower, followee)
        else:
            changed = await repository.remove_person_follow(session, follower, followee)
        if changed:
            self._rebuild_after_commit(session, redis, follower)

    def _rebuild_after_commit(
        self, session: AsyncSession, redis: Redis, user_id: uuid.UUID
    ) -> None:
        async def drop() -> None:
            await store.drop_home(redis, user_id)
            await changes.announce(redis, user_id)

        after_commit(session, drop)


follow_service = FollowService()
