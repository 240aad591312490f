"""Queries on users and follows; nothing else in accounts writes SQL for them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import contains_eager

from services.accounts.models import User, UserFollow
from shared.pagination import CursorPart, SortKey, keyset_page


async def get_by_id(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_by_username(session: AsyncSession, username: str) -> User | None:
    return await session.scalar(select(User).where(User.username == username.lower()))


async def get_by_login(session: AsyncSession, login: str) -> User | None:
    login = login.lower()
    return await session.scalar(
        select(User).where(or_(User.username == login, User.email == login))
    )


async def username_or_email_taken(session: AsyncSession, username: str, email: str) -> str | None:
    """'username' or 'email' when taken, else None."""
    row = await session.execute(
        select(User.username, User.email).where(or_(User.username == username, User.email == email))
    )
    for taken_username, taken_email in row:
        if taken_username == username:
            return "username"
        if taken_email == email:
            return "email"
    return None


async def add_user(session: AsyncSession, user: User) -> User:
    """Insert `user` now (its id is needed); a taken name or email raises IntegrityError."""
    session.add(user)
    await session.flush()
    return user


async def banned_user_ids(session: AsyncSession) -> set[str]:
    # `WHERE is_banned` (not `IS TRUE`) so the planner uses the partial index ix_users_banned.
    ids = await session.scalars(select(User.id).where(User.is_banned))
    return {str(user_id) for user_id in ids}


async def banned_among(session: AsyncSession, user_ids: list[uuid.UUID]) -> set[str]:
    """Which of `user_ids` are banned."""
    ids = await session.scalars(select(User.id).where(User.is_banned, User.id.in_(user_ids)))
    return {str(user_id) for user_id in ids}


async def follow_counts(session: AsyncSession, user_id: uuid.UUID) -> tuple[int, int]:
    followers = select(func.count()).where(UserFollow.followee_id == user_id).scalar_subquery()
    following = select(func.count()).where(UserFollow.follower_id == user_id).scalar_subquery()
    row = (await session.execute(select(followers, following))).one()
    return int(row[0]), int(row[1])


async def get_follow(
    session: AsyncSession, follower_id: uuid.UUID, followee_id: uuid.UUID
) -> UserFollow | None:
    return await session.get(UserFollow, (follower_id, followee_id))


async def add_follow(
    session: AsyncSession, follower_id: uuid.UUID, followee_id: uuid.UUID
) -> UserFollow:
    follow = UserFollow(follower_id=follower_id, followee_id=followee_id)
    session.add(follow)
    await session.flush()
    return follow


async def delete_follow(session: AsyncSession, follow: UserFollow) -> None:
    await session.delete(follow)
    await session.flush()


async def follow_page(
    session: AsyncSession, user_id: uuid.UUID, *, followers: bool, cursor: str | None, limit: int
) -> tuple[list[tuple[User, datetime]], str | None]:
    """A page of the user's followers (or of whom they follow) with when each follow began,
    newest first; banned users are left out. The cursor is (follow's created_at, other's id)."""
    relation = UserFollow.follower if followers else UserFollow.followee
    own, other = (
        (UserFollow.followee_id, UserFollow.follower_id)
        if followers
        else (UserFollow.follower_id, UserFollow.followee_id)
    )
    query = (
        select(UserFollow)
        .join(User, other == User.id)
        .options(contains_eager(relation))
        .where(own == user_id, User.is_banned.is_(False))
    )
    keys = [
        SortKey(UserFollow.created_at, CursorPart.TIMESTAMP, descending=True),
        SortKey(other, CursorPart.UUID, descending=True),
    ]
    follows, next_cursor = await keyset_page(session, query, keys, cursor=cursor, limit=limit)
    pairs = [(f.follower if followers else f.followee, f.created_at) for f in follows]
    return pairs, next_cursor


async def search_people(
    session: AsyncSession, q: str | None, *, cursor: str | None, limit: int
) -> tuple[list[User], str | None]:
    """Users not banned whose username or display name contains `q` (any case), by username.
    Emails are never searched: they are private."""
    query = select(User).where(User.is_banned.is_(False))
    if q:
        query = query.where(
            or_(
                User.username.icontains(q, autoescape=True),
                User.display_name.icontains(q, autoescape=True),
            )
        )
    keys = [SortKey(User.username, CursorPart.TEXT)]
    return await keyset_page(session, query, keys, cursor=cursor, limit=limit)


async def follow_counts_of(
    session: AsyncSession, user_ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, int]]:
    """(followers, following) of each of `user_ids`, in two grouped queries."""
    counts = {user_id: (0, 0) for user_id in user_ids}
    if not user_ids:
        return counts
    followers = await session.execute(
        select(UserFollow.followee_id, func.count())
        .where(UserFollow.followee_id.in_(user_ids))
        .group_by(UserFollow.followee_id)
    )
    for user_id, count in followers:
        counts[user_id] = (int(count), counts[user_id][1])
    following = await session.execute(
        select(UserFollow.follower_id, func.count())
        .where(UserFollow.follower_id.in_(user_ids))
        .group_by(UserFollow.follower_id)
    )
    for user_id, count in following:
        counts[user_id] = (counts[user_id][0], int(count))
    return counts


async def followed_among(
    session: AsyncSession, follower_id: uuid.UUID, user_ids: list[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of `user_ids` `follower_id` follows."""
    if not user_ids:
        return set()
    ids = await session.scalars(
        select(UserFollow.followee_id).where(
            UserFollow.follower_id == follower_id, UserFollow.followee_id.in_(user_ids)
        )
    )
    return set(ids)
