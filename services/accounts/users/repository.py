"""Queries on users and follows; nothing else in accounts writes SQL for them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.models import User, UserFollow


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


async def follow_counts(session: AsyncSession, user_id: uuid.UUID) -> tuple[int, int]:
    followers = select(func.count()).where(UserFollow.followee_id == user_id).scalar_subquery()
    following = select(func.count()).where(UserFollow.follower_id == user_id).scalar_subquery()
    row = (await session.execute(select(followers, following))).one()
    return int(row[0]), int(row[1])


async def get_follow(
    session: AsyncSession, follower_id: uuid.UUID, followee_id: uuid.UUID
) -> UserFollow | None:
    return await session.get(UserFollow, (follower_id, followee_id))


def follow_page_query(
    user_id: uuid.UUID, *, followers: bool, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> Select[User, datetime]:
    """Newest follows first; (created_at, other user's id) is the cursor."""
    own, other = (
        (UserFollow.followee_id, UserFollow.follower_id)
        if followers
        else (UserFollow.follower_id, UserFollow.followee_id)
    )
    query = (
        select(User, UserFollow.created_at)
        .join(UserFollow, other == User.id)
        .where(own == user_id, User.is_banned.is_(False))
        .order_by(UserFollow.created_at.desc(), other.desc())
        .limit(limit)
    )
    if after is not None:
        query = query.where(tuple_(UserFollow.created_at, other) < tuple_(*after))
    return query
