"""Domain events -> notifications: who is told what, once per event and recipient.

Rules, for every kind: nobody is notified of their own doing (the actor is never the
recipient), a muted kind is not made, and nobody hears of a model they may not use: the model
hub's access check is asked as the recipient (the same check that hides a private model's
posts), and for a post also about its thread's root, as `post_service.visible` does.

Payloads handled (producers may add fields; missing or malformed ones drop the event):

- `model.version.validated` / `model.version.failed` (models_hub):
  `{model_id, version_id, owner_id, ref, number, error}` -> the model's owner.
- `finetune.completed` / `finetune.failed` (the fine-tune jobs, when they land):
  `{job_id, model_id, owner_id, version_id?, ref?, error?}` -> the job's owner.
- `post.published` (feed): `{post_id, author_kind, model_id, owner_id, creator_id, parent_id,
  root_id, parent_owner_id, parent_model_id}` -> the model's owner when someone else had their
  model post, and the parent post's owner for a reply by anyone else.
- `model.followed` (feed): `{model_id, owner_id, follower_id, follower_username}` -> the owner.
- `user.followed` (accounts): `{follower_id, follower_username, followee_id}` -> the followee.
- `post.liked` (feed): `{post_id, user_id, username, owner_id, model_id}` -> the post's owner.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from services.feed.deps import FeedContext
from services.feed.models import AuthorKind, NotificationKind, Post, PostStatus
from services.feed.notifications import live, repository
from services.feed.notifications.service import read_notification
from services.feed.posts import repository as posts_repository
from services.feed.posts.service import post_service
from shared.auth.identity import Identity, Role, Scope
from shared.db import session_scope
from shared.events import Event
from shared.models_client import ModelNotFound

logger = logging.getLogger("llmnet.feed.notifications")

EVENT_TYPES = (
    "model.version.validated",
    "model.version.failed",
    "finetune.completed",
    "finetune.failed",
    "post.published",
    "model.followed",
    "user.followed",
    "post.liked",
)
_SNIPPET = 80


@dataclass
class Draft:
    recipient_id: uuid.UUID
    kind: NotificationKind
    summary: str
    actor_id: uuid.UUID | None = None
    actor_username: str | None = None
    model_id: uuid.UUID | None = None
    post_id: uuid.UUID | None = None
    payload: dict[str, Any] = field(default_factory=dict)


def _as_recipient(user_id: uuid.UUID) -> Identity:
    """The recipient as the hub's access check sees them (an ordinary reader)."""
    return Identity(
        user_id=user_id,
        username="",
        role=Role.USER,
        scopes=frozenset({Scope.READ}),
        auth_method="service",
    )


def _uuid(payload: dict[str, Any], key: str) -> uuid.UUID | None:
    value = payload.get(key)
    return uuid.UUID(str(value)) if value else None


def _required(payload: dict[str, Any], key: str) -> uuid.UUID:
    value = _uuid(payload, key)
    if value is None:
        raise ValueError(f"{key} missing")
    return value


def _snippet(post: Post) -> str:
    text = " ".join((post.content or "").split())
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 1] + "…"


def _author(post: Post) -> str:
    return post.model_ref if post.model_ref else f"@{post.owner_username}"


async def _may_use(ctx: FeedContext, recipient: uuid.UUID, model_id: uuid.UUID) -> str | None:
    """The model's ref if the recipient may use it, else None."""
    try:
        return (await ctx.models.access_by_id(model_id, _as_recipient(recipient))).ref
    except ModelNotFound:
        return None


async def _may_see(ctx: FeedContext, recipient: uuid.UUID, post: Post, root: Post | None) -> bool:
    viewer = _as_recipient(recipient)
    seen: dict[uuid.UUID, bool] = {}
    if not await post_service.may_see(ctx, viewer, post, seen):
        return False
    return root is None or await post_service.may_see(ctx, viewer, root, seen)


async def _post_and_root(ctx: FeedContext, post_id: uuid.UUID) -> tuple[Post, Post | None] | None:
    async with session_scope(ctx.sessionmaker) as session:
        post = await posts_repository.get_post(session, post_id)
        if post is None or post.deleted or post.status != PostStatus.PUBLISHED:
            return None
        root = None
        if post.root_id != post.id:
            root = await posts_repository.get_post(session, post.root_id)
        return post, root


async def _version(ctx: FeedContext, event: Event) -> list[Draft]:
    p = event.payload
    owner, model_id = _required(p, "owner_id"), _required(p, "model_id")
    if await _may_use(ctx, owner, model_id) is None:
        return []
    ref, number = p.get("ref") or "your model", p.get("number")
    subject = {"version_id": p.get("version_id"), "ref": p.get("ref"), "number": number}
    if event.type == "model.version.validated":
        return [
            Draft(
                owner,
                NotificationKind.VERSION_VALIDATED,
                f"Version {number} of {ref} passed validation and is ready to use.",
                model_id=model_id,
                payload=subject,
            )
        ]
    error = str(p.get("error") or "no reason given")
    return [
        Draft(
            owner,
            NotificationKind.VERSION_FAILED,
            f"Version {number} of {ref} failed validation: {error}",
            model_id=model_id,
            payload={**subject, "error": error},
        )
    ]


async def _finetune(ctx: FeedContext, event: Event) -> list[Draft]:
    p = event.payload
    owner, model_id = _required(p, "owner_id"), _required(p, "model_id")
    ref = await _may_use(ctx, owner, model_id)
    if ref is None:
        return []
    # The hub names them `fine_tune_id` and `result_version_id` (its FineTuneEvent).
    subject = {
        "job_id": p.get("fine_tune_id") or p.get("job_id"),
        "version_id": p.get("result_version_id") or p.get("version_id"),
        "ref": ref,
    }
    if event.type == "finetune.completed":
        return [
            Draft(
                owner,
                NotificationKind.FINETUNE_COMPLETED,
                f"Your fine-tune of {ref} finished.",
                model_id=model_id,
                payload=subject,
            )
        ]
    error = str(p.get("error") or "no reason given")
    return [
        Draft(
            owner,
            NotificationKind.FINETUNE_FAILED,
            f"Your fine-tune of {ref} failed: {error}",
            model_id=model_id,
            payload={**subject, "error": error},
        )
    ]


async def _published(ctx: FeedContext, event: Event) -> list[Draft]:
    p = event.payload
    found = await _post_and_root(ctx, _required(p, "post_id"))
    if found is None:
        return []
    post, root = found
    drafts = []
    subject = {"root_id": str(post.root_id), "snippet": _snippet(post)}
    if post.author_kind == AuthorKind.MODEL and post.creator_id != post.owner_id:
        drafts.append(
            Draft(
                post.owner_id,
                NotificationKind.MODEL_POSTED,
                f"{post.model_ref} published a post: {_snippet(post)}",
                actor_id=post.creator_id,
                model_id=post.model_id,
                post_id=post.id,
                payload={**subject, "ref": post.model_ref},
            )
        )
    parent_owner = _uuid(p, "parent_owner_id")
    if post.parent_id is not None and parent_owner and parent_owner != post.creator_id:
        drafts.append(
            Draft(
                parent_owner,
                NotificationKind.POST_REPLIED,
                f"{_author(post)} replied to your post: {_snippet(post)}",
                actor_id=post.creator_id,
                actor_username=post.owner_username if post.model_id is None else None,
                model_id=post.model_id,
                post_id=post.id,
                payload={**subject, "parent_id": str(post.parent_id), "ref": post.model_ref},
            )
        )
    return [d for d in drafts if await _may_see(ctx, d.recipient_id, post, root)]


async def _model_followed(ctx: FeedContext, event: Event) -> list[Draft]:
    p = event.payload
    owner, follower = _required(p, "owner_id"), _required(p, "follower_id")
    model_id = _required(p, "model_id")
    if owner == follower:
        return []
    ref = await _may_use(ctx, owner, model_id)
    if ref is None:
        return []
    username = str(p.get("follower_username") or "someone")
    return [
        Draft(
            owner,
            NotificationKind.MODEL_FOLLOWED,
            f"@{username} followed {ref}.",
            actor_id=follower,
            actor_username=username,
            model_id=model_id,
            payload={"ref": ref},
        )
    ]


async def _user_followed(ctx: FeedContext, event: Event) -> list[Draft]:
    p = event.payload
    followee, follower = _required(p, "followee_id"), _required(p, "follower_id")
    if followee == follower:
        return []
    username = str(p.get("follower_username") or "someone")
    return [
        Draft(
            followee,
            NotificationKind.USER_FOLLOWED,
            f"@{username} followed you.",
            actor_id=follower,
            actor_username=username,
        )
    ]


async def _liked(ctx: FeedContext, event: Event) -> list[Draft]:
    p = event.payload
    liker = _required(p, "user_id")
    found = await _post_and_root(ctx, _required(p, "post_id"))
    if found is None:
        return []
    post, root = found
    if post.owner_id == liker or not await _may_see(ctx, post.owner_id, post, root):
        return []
    username = str(p.get("username") or "someone")
    what = f"{post.model_ref}'s post" if post.model_ref else "your post"
    return [
        Draft(
            post.owner_id,
            NotificationKind.POST_LIKED,
            f"@{username} liked {what}: {_snippet(post)}",
            actor_id=liker,
            actor_username=username,
            model_id=post.model_id,
            post_id=post.id,
            payload={"root_id": str(post.root_id), "ref": post.model_ref},
        )
    ]


_DRAFTERS = {
    "model.version.validated": _version,
    "model.version.failed": _version,
    "finetune.completed": _finetune,
    "finetune.failed": _finetune,
    "post.published": _published,
    "model.followed": _model_followed,
    "user.followed": _user_followed,
    "post.liked": _liked,
}


async def notify(ctx: FeedContext, redis: Redis, event: Event) -> int:
    """Make the event's notifications (each at most once), then append them to the
    recipients' live streams (each at most once). Returns how many this call made."""
    drafter = _DRAFTERS.get(event.type)
    if drafter is None:
        return 0
    try:
        event_id = uuid.UUID(event.event_id)
        drafts = await drafter(ctx, event)
    except (KeyError, TypeError, ValueError) as exc:
        logger.warning("dropping malformed %s event %s: %s", event.type, event.id, exc)
        return 0
    made = 0
    async with session_scope(ctx.sessionmaker) as session:
        for draft in drafts:
            if await repository.is_muted(session, draft.recipient_id, draft.kind):
                continue
            values = {
                "recipient_id": draft.recipient_id,
                "kind": draft.kind,
                "summary": draft.summary,
                "actor_id": draft.actor_id,
                "actor_username": draft.actor_username,
                "model_id": draft.model_id,
                "post_id": draft.post_id,
                "payload": draft.payload,
                "event_id": event_id,
            }
            if await repository.add(session, values) is not None:
                made += 1
        # Every row of this event, also those an earlier, crashed attempt committed.
        rows = await repository.for_event(session, event_id)
    cap = ctx.settings.notification_stream_length
    for row in rows:
        await live.append(redis, read_notification(row), row.recipient_id, cap)
    return made
