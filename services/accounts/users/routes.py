"""Own account, public profiles, follows."""

from __future__ import annotations

from fastapi import APIRouter, Path, Query

from services.accounts.users.schemas import (
    FollowEntry,
    FollowState,
    UserPrivate,
    UserPublic,
    UserUpdate,
)
from services.accounts.users.service import user_service
from shared.auth.identity import CurrentUser, OptionalUser
from shared.db import SessionDep
from shared.fields import Text
from shared.pagination import CursorQuery, LimitQuery, Page

router = APIRouter(prefix="/api/v1/users", tags=["users"])
Username = Path(pattern=r"^[A-Za-z0-9_]{1,32}$", description="A username.")


@router.get("", response_model=Page[UserPublic], summary="Search people")
async def search_people(
    session: SessionDep,
    viewer: OptionalUser,
    q: Text | None = Query(
        default=None, max_length=100, description="Part of a username or display name."
    ),
    cursor: CursorQuery = None,
    limit: LimitQuery = 20,
) -> Page[UserPublic]:
    """People by username, with follow counts; banned accounts are left out."""
    return await user_service.search(session, q, viewer, cursor=cursor, limit=limit)


@router.get("/me", response_model=UserPrivate, summary="Your account")
async def get_me(user: CurrentUser, session: SessionDep) -> UserPrivate:
    return await user_service.me(session, user.user_id)


@router.patch("/me", response_model=UserPrivate, summary="Update your profile")
async def update_me(body: UserUpdate, user: CurrentUser, session: SessionDep) -> UserPrivate:
    return await user_service.update_me(session, user.user_id, body)


@router.get("/{username}", response_model=UserPublic, summary="A public profile")
async def get_profile(
    session: SessionDep, viewer: OptionalUser, username: str = Username
) -> UserPublic:
    return await user_service.profile(session, username, viewer)


@router.post("/{username}/follow", response_model=FollowState, summary="Follow a user")
async def follow(user: CurrentUser, session: SessionDep, username: str = Username) -> FollowState:
    return await user_service.follow(session, user, username)


@router.delete("/{username}/follow", response_model=FollowState, summary="Unfollow a user")
async def unfollow(user: CurrentUser, session: SessionDep, username: str = Username) -> FollowState:
    return await user_service.unfollow(session, user, username)


@router.get("/{username}/followers", response_model=Page[FollowEntry], summary="Who follows a user")
async def followers(
    session: SessionDep,
    viewer: OptionalUser,
    username: str = Username,
    cursor: CursorQuery = None,
    limit: LimitQuery = 20,
) -> Page[FollowEntry]:
    return await user_service.follow_page(
        session, username, viewer, followers=True, cursor=cursor, limit=limit
    )


@router.get(
    "/{username}/following", response_model=Page[FollowEntry], summary="Whom a user follows"
)
async def following(
    session: SessionDep,
    viewer: OptionalUser,
    username: str = Username,
    cursor: CursorQuery = None,
    limit: LimitQuery = 20,
) -> Page[FollowEntry]:
    return await user_service.follow_page(
        session, username, viewer, followers=False, cursor=cursor, limit=limit
    )
