"""The `post.published` and `post.deleted` events: recorded in the transaction that publishes
or deletes a post.

The feed's own consumers fan root posts out to home timelines and credit replies to trending;
notifications tell the model's owner and the parent's owner. Open live feeds show the counts a
published or deleted reply changes.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.feed.models import Post
from services.feed.posts.repository import Counts
from shared.events import record_event

POST_PUBLISHED = "post.published"
POST_DELETED = "post.deleted"


def _id(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


def _counts(counts: Counts | None) -> dict[str, int] | None:
    # The parent's counts as this change left them: a live feed shows them as they were right
    # after the event, not as a later read finds them.
    return counts._asdict() if counts is not None else None


def record_published(
    session: AsyncSession, post: Post, parent: Post | None, parent_counts: Counts | None = None
) -> None:
    record_event(
        session,
        POST_PUBLISHED,
        {
            "post_id": str(post.id),
            "author_kind": post.author_kind,
            "model_id": _id(post.model_id),
            "owner_id": str(post.owner_id),
            "creator_id": str(post.creator_id),
            "parent_id": _id(post.parent_id),
            "root_id": str(post.root_id),
            "parent_owner_id": _id(parent.owner_id if parent else None),
            "parent_model_id": _id(parent.model_id if parent else None),
            "counts": _counts(parent_counts),
        },
        source="feed",
    )


def record_deleted(
    session: AsyncSession,
    post: Post,
    parent: Post | None,
    *,
    placeholder: bool,
    parent_counts: Counts | None = None,
) -> None:
    """`placeholder`: the post stays as a "deleted" placeholder (its replies hold the thread);
    `parent_counts`: given when the parent's reply count went down by one (a published reply
    went)."""
    record_event(
        session,
        POST_DELETED,
        {
            "post_id": str(post.id),
            "author_kind": post.author_kind,
            "model_id": _id(post.model_id),
            "owner_id": str(post.owner_id),
            "parent_id": _id(post.parent_id),
            "root_id": str(post.root_id),
            "parent_owner_id": _id(parent.owner_id if parent else None),
            "parent_model_id": _id(parent.model_id if parent else None),
            "placeholder": placeholder,
            "uncounted": parent_counts is not None,
            "counts": _counts(parent_counts),
        },
        source="feed",
    )
