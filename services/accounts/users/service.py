"""Profiles and follows between users."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.models import User
from services.accounts.users import repository
from services.accounts.users.schemas import (
    FollowEntry,
    FollowState,
    InternalUser,
    UserPrivate,
    UserPublic,
    UserSummary,
    UserUpdate,
)
from shared.auth.identity import Identity
from shared.errors import BadRequest, NotFound
from shared.events import record_event
from shared.pagination import Page


class UserNotFound(NotFound):
    code = "user_not_found"


class UserService:
    async def visible_user(
        self, session: AsyncSession, username: str, viewer: Identity | None
    ) -> User:
        """A user by name; banned users exist only for admins."""
        user = await repository.get_by_username(session, username)
        if user is None or (user.is_banned and not (viewer and viewer.is_admin)):
            raise UserNotFound(f"No user named '{username}'.")
        return user

    async def me(self, session: AsyncSession, user_id: uuid.UUID) -> UserPrivate:
        return await self._private(session, await self._own_account(session, user_id))

    async def update_me(
        self, session: AsyncSession, user_id: uuid.UUID, changes: UserUpdate
    ) -> UserPrivate:
        user = await self._own_account(session, user_id)
        # UserUpdate refuses null for is_model_developer; null clears the other fields.
        for field, value in changes.model_dump(exclude_unset=True).items():
            setattr(user, field, str(value) if field == "avatar_url" and value else value)
        await session.flush()
        return await self._private(session, user)

    async def _own_account(self, session: AsyncSession, user_id: uuid.UUID) -> User:
        user = await repository.get_by_id(session, user_id)
        if user is None:
            raise UserNotFound("Your account no longer exists.")
        return user

    async def _private(self, session: AsyncSession, user: User) -> UserPrivate:
        followers, following = await repository.follow_counts(session, user.id)
        return UserPrivate.model_validate(user).model_copy(
            update={"followers_count": followers, "following_count": following}
        )

    async def profile(
        self, session: AsyncSession, username: str, viewer: Identity | None
    ) -> UserPublic:
        user = await self.visible_user(session, username, viewer)
        followers, following = await repository.follow_counts(session, user.id)
        followed_by_me = None
        if viewer is not None:
            followed_by_me = (
                await repository.get_follow(session, viewer.user_id, user.id) is not None
            )
        return UserPublic.model_validate(user).model_copy(
            update={
                "followers_count": followers,
                "following_count": following,
                "followed_by_me": followed_by_me,
            }
        )

    async def search(
        self,
        session: AsyncSession,
        q: str | None,
        viewer: Identity | None,
        *,
        cursor: str | None,
        limit: int,
    ) -> Page[UserPublic]:
        """People by name, with their follow counts and whether the viewer follows them."""
        users, next_cursor = await repository.search_people(session, q, cursor=cursor, limit=limit)
        ids = [u.id for u in users]
        counts = await repository.follow_counts_of(session, ids)
        followed = (
            await repository.followed_among(session, viewer.user_id, ids) if viewer else set()
        )
        items = [
            UserPublic.model_validate(u).model_copy(
                update={
                    "followers_count": counts[u.id][0],
                    "following_count": counts[u.id][1],
                    "followed_by_me": (u.id in followed) if viewer else None,
                }
            )
            for u in users
        ]
        return Page[UserPublic](items=items, next_cursor=next_cursor)

    async def follow(self, session: AsyncSession, viewer: Identity, username: str) -> FollowState:
        user = await self.visible_user(session, username, viewer)
        if user.id == viewer.user_id:
            raise BadRequest("You cannot follow yourself.", code="cannot_follow_self")
        if await repository.get_follow(session, viewer.user_id, user.id) is None:
            await repository.add_follow(session, viewer.user_id, user.id)
            record_event(
                session,
                "user.followed",
                {
                    "follower_id": str(viewer.user_id),
                    "follower_username": viewer.username,
                    "followee_id": str(user.id),
                    "followee_username": user.username,
                },
                source="accounts",
            )
        followers, _ = await repository.follow_counts(session, user.id)
        return FollowState(following=True, followers_count=followers)

    async def unfollow(self, session: AsyncSession, viewer: Identity, username: str) -> FollowState:
        user = await self.visible_user(session, username, viewer)
        follow = await repository.get_follow(session, viewer.user_id, user.id)
        if follow is not None:
            await repository.delete_follow(session, follow)
            record_event(
                session,
                "user.unfollowed",
                {"follower_id": str(viewer.user_id), "followee_id": str(user.id)},
                source="accounts",
            )
        followers, _ = await repository.follow_counts(session, user.id)
        return FollowState(following=False, followers_count=followers)

    async def follow_page(
        self,
        session: AsyncSession,
        username: str,
        viewer: Identity | None,
        *,
        followers: bool,
        cursor: str | None,
        limit: int,
    ) -> Page[FollowEntry]:
        user = await self.visible_user(session, username, viewer)
        pairs, next_cursor = await repository.follow_page(
            session, user.id, followers=followers, cursor=cursor, limit=limit
        )
        items = [
            FollowEntry(user=UserSummary.model_validate(other), followed_at=followed_at)
            for other, followed_at in pairs
        ]
        return Page[FollowEntry](items=items, next_cursor=next_cursor)

    async def internal_by_name(self, session: AsyncSession, username: str) -> InternalUser:
        """Any user, banned ones included, for another service."""
        user = await repository.get_by_username(session, username)
        if user is None:
            raise UserNotFound(f"No user named '{username}'.")
        return InternalUser.model_validate(user)

    async def internal_by_id(self, session: AsyncSession, user_id: uuid.UUID) -> InternalUser:
        """Any user, banned ones included, for another service."""
        return InternalUser.model_validate(await self.get(session, user_id))

    async def get(self, session: AsyncSession, user_id: uuid.UUID) -> User:
        user = await repository.get_by_id(session, user_id)
        if user is None:
            raise UserNotFound("No such user.")
        return user


user_service = UserService()
