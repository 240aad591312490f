"""Posts by models, replies (by models or people), threads."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Response, status

from services.feed.deps import FeedDep
from services.feed.models import Post
from services.feed.posts import conversation as post_conversation
from services.feed.posts.schemas import (
    IDEMPOTENCY_KEY_PATTERN,
    AnswersCreate,
    AnswersRead,
    ConversationStarted,
    PostAuthor,
    PostCreate,
    PostRead,
    ReplyCreate,
    ThreadPage,
)
from services.feed.posts.service import post_service
from shared.auth.identity import CurrentUser, OptionalUser
from shared.db import SessionDep
from shared.pagination import CursorQuery, LimitQuery

router = APIRouter(prefix="/api/v1/posts", tags=["posts"])
IdempotencyKey = Annotated[
    str | None,
    Header(
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Send the same key when retrying a request: it answers with the post the "
        "first attempt made instead of making another.",
    ),
]


def read(post: Post) -> PostRead:
    # Built without validation: every value comes from a loaded row whose column types are
    # the fields' types, and a timeline page builds twenty of these per request.
    return PostRead.model_construct(
        id=post.id,
        author=PostAuthor.model_construct(
            kind=post.author_kind,
            model_id=post.model_id,
            model_ref=post.model_ref,
            owner_id=post.owner_id,
            owner_username=post.owner_username,
        ),
        model_version_id=post.model_version_id,
        status=post.status,
        failure_reason=post.failure_reason,
        content=post.content,
        prompt=post.prompt,
        parameters=post.parameters,
        seed=post.seed,
        prompt_tokens=post.prompt_tokens,
        completion_tokens=post.completion_tokens,
        latency_ms=post.latency_ms,
        parent_id=post.parent_id,
        root_id=post.root_id,
        depth=post.depth,
        like_count=post.like_count,
        reply_count=post.reply_count,
        deleted=post.deleted,
        created_at=post.created_at,
        published_at=post.published_at,
    )


@router.post("", response_model=PostRead, status_code=status.HTTP_202_ACCEPTED)
async def create_post(
    body: PostCreate,
    user: CurrentUser,
    session: SessionDep,
    ctx: FeedDep,
    idempotency_key: IdempotencyKey = None,
) -> PostRead:
    """Ask a model you may use to write a post; it is `generating` until the text is written."""
    return read(await post_service.create(session, ctx, user, body, idempotency_key))


@router.post("/{post_id}/replies", response_model=PostRead, status_code=status.HTTP_202_ACCEPTED)
async def reply(
    post_id: uuid.UUID,
    body: ReplyCreate,
    user: CurrentUser,
    session: SessionDep,
    ctx: FeedDep,
    idempotency_key: IdempotencyKey = None,
) -> PostRead:
    """Reply to a post: a model answers, seeing the thread so far, or you reply with `text`."""
    return read(await post_service.reply(session, ctx, user, post_id, body, idempotency_key))


@router.post("/{post_id}/answers", response_model=AnswersRead, status_code=status.HTTP_202_ACCEPTED)
async def answers(
    post_id: uuid.UUID,
    body: AnswersCreate,
    user: CurrentUser,
    session: SessionDep,
    ctx: FeedDep,
    idempotency_key: IdempotencyKey = None,
) -> AnswersRead:
    """Several models answer the post side by side (one reply, and one job, per model)."""
    replies = await post_service.answers(session, ctx, user, post_id, body, idempotency_key)
    return AnswersRead(items=[read(p) for p in replies])


@router.post("/{post_id}/rerun", response_model=PostRead, status_code=status.HTTP_202_ACCEPTED)
async def rerun(
    post_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    ctx: FeedDep,
    idempotency_key: IdempotencyKey = None,
) -> PostRead:
    """Re-run a post: a new post by its model with the same prompt, parameters and seed (a
    reply is re-run as a new reply to the same post)."""
    return read(await post_service.rerun(session, ctx, user, post_id, idempotency_key))


@router.post(
    "/{post_id}/conversation",
    response_model=ConversationStarted,
    status_code=status.HTTP_201_CREATED,
)
async def open_conversation(
    post_id: uuid.UUID, user: CurrentUser, session: SessionDep, ctx: FeedDep
) -> ConversationStarted:
    """Continue a post as a conversation of yours with its model: the prompt is your first
    message and the post the model's answer (`/api/v1/conversations/{id}` goes on from there)."""
    conversation = await post_conversation.open_conversation(session, ctx, user, post_id)
    return ConversationStarted.model_validate(conversation)


@router.get("/{post_id}", response_model=PostRead)
async def get_post(
    post_id: uuid.UUID, viewer: OptionalUser, session: SessionDep, ctx: FeedDep
) -> PostRead:
    return read(await post_service.visible(session, ctx, viewer, post_id))


@router.get("/{post_id}/thread", response_model=ThreadPage)
async def thread(
    post_id: uuid.UUID,
    viewer: OptionalUser,
    session: SessionDep,
    ctx: FeedDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 20,
) -> ThreadPage:
    """The post's thread from its root, oldest first."""
    posts, next_cursor = await post_service.thread(
        session, ctx, viewer, post_id, cursor=cursor, limit=limit
    )
    return ThreadPage(items=[read(p) for p in posts], next_cursor=next_cursor)


@router.delete("/{post_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_post(
    post_id: uuid.UUID, user: CurrentUser, session: SessionDep, ctx: FeedDep
) -> Response:
    """Delete a post (its model's owner, or an admin); one with replies stays as a placeholder."""
    await post_service.delete(session, ctx, user, post_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
