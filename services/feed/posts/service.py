"""Posts: creating them (a model's post, a model's or a person's reply), re-running them,
reading them and their threads, deleting them; who may see what.

A model's post is created `generating` and a job writes it (posts/tasks.py). A private model's
posts are visible only to those who may use the model: the model hub's internal access check
answers that, the same check inference applies before it generates.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.feed.deps import FeedContext
from services.feed.models import AuthorKind, Post, PostStatus
from services.feed.posts import repository
from services.feed.posts.events import record_deleted, record_published
from services.feed.posts.schemas import (
    AnswersCreate,
    ModelReplyCreate,
    PostCreate,
    ReplyCreate,
    SamplingParams,
)
from shared.auth.identity import Identity, Scope
from shared.db import utcnow
from shared.errors import Conflict, Forbidden, NotFound, TooManyRequests, UnprocessableEntity
from shared.jobs import enqueue_after_commit
from shared.models_client import ModelAccess, ModelNotFound

FEED_QUEUE = "llmnet:feed"
GENERATE_JOB = "generate_post"
_SEED_MAX = 2**31 - 1


class PostNotFound(NotFound):
    code = "post_not_found"


class ModelNotReady(Conflict):
    code = "model_not_ready"


class PostNotPublished(Conflict):
    code = "post_not_published"


class ThreadTooDeep(UnprocessableEntity):
    code = "thread_too_deep"


class DailyPostCap(TooManyRequests):
    code = "daily_post_cap"


def caller_payload(caller: Identity) -> dict[str, object]:
    """The identity a job generates as (jobs take plain values)."""
    return {
        "user_id": str(caller.user_id),
        "username": caller.username,
        "role": caller.role,
        "scopes": sorted(caller.scopes),
        "auth_method": caller.auth_method,
        "api_key_id": caller.api_key_id,
    }


def caller_from(payload: dict[str, object]) -> Identity:
    scopes = payload["scopes"]
    assert isinstance(scopes, list)
    api_key_id = payload.get("api_key_id")
    return Identity(
        user_id=uuid.UUID(str(payload["user_id"])),
        username=str(payload["username"]),
        role=str(payload["role"]),
        scopes=frozenset(str(s) for s in scopes),
        auth_method=str(payload["auth_method"]),
        api_key_id=str(api_key_id) if api_key_id else None,
    )


class PostNotRerunnable(Conflict):
    code = "post_not_rerunnable"


class PostService:
    async def _usable_model(
        self, ctx: FeedContext, caller: Identity, ref: str | uuid.UUID
    ) -> ModelAccess:
        """The model (by reference or id) if the caller may ask it to write now."""
        if Scope.INFERENCE not in caller.scopes:
            raise Forbidden(
                "Asking a model to write needs the 'inference' scope on this credential.",
                code="insufficient_scope",
            )
        # ModelNotFound (404) if not usable.
        if isinstance(ref, uuid.UUID):
            model = await ctx.models.access_by_id(ref, caller)
        else:
            model = await ctx.models.access(ref, caller)
        if model.status != "ready":
            raise ModelNotReady(f"The model {model.ref} has no ready version to write with.")
        return model

    async def _check_daily_cap(
        self, session: AsyncSession, ctx: FeedContext, model: ModelAccess
    ) -> None:
        await repository.lock_model_day(session, model.id)
        since = utcnow() - timedelta(days=1)
        cap = ctx.settings.max_posts_per_model_per_day
        if await repository.count_model_posts_since(session, model.id, since) >= cap:
            raise DailyPostCap(
                f"{model.ref} has written its {cap} posts for the last 24 hours; try later.",
                retry_after=3600,
            )

    async def _model_post(
        self,
        session: AsyncSession,
        ctx: FeedContext,
        caller: Identity,
        model: ModelAccess,
        prompt: str | None,
        params: SamplingParams,
        key: str,
        parent: Post | None,
    ) -> Post:
        await self._check_daily_cap(session, ctx, model)
        post_id = uuid.uuid4()
        post = Post(
            id=post_id,
            author_kind=AuthorKind.MODEL,
            model_id=model.id,
            model_ref=model.ref,
            model_version_id=model.active_version.id if model.active_version else None,
            owner_id=model.owner_id,
            owner_username=model.ref.partition("/")[0],
            creator_id=caller.user_id,
            idempotency_key=key,
            prompt=prompt,
            parameters=params.sampling(),
            seed=params.seed if params.seed is not None else secrets.randbelow(_SEED_MAX),
            status=PostStatus.GENERATING,
            parent_id=parent.id if parent else None,
            root_id=parent.root_id if parent else post_id,
            depth=parent.depth + 1 if parent else 0,
        )
        stored = await repository.add_post(session, post)
        if stored is post:
            self.enqueue_generation(session, ctx, post, caller)
        return stored

    async def scheduled(
        self,
        session: AsyncSession,
        ctx: FeedContext,
        owner: Identity,
        model: ModelAccess,
        prompt: str,
        key: str,
    ) -> Post:
        """A post by a model's posting schedule, as its owner; the key makes a rerun a no-op."""
        if existing := await repository.by_idempotency_key(session, owner.user_id, key):
            return existing
        return await self._model_post(
            session, ctx, owner, model, prompt, SamplingParams(), key, None
        )

    def enqueue_generation(
        self, session: AsyncSession, ctx: FeedContext, post: Post, caller: Identity
    ) -> None:
        # One job id per post: a second enqueue of the same post is a no-op in arq.
        enqueue_after_commit(
            session,
            ctx.jobs,
            GENERATE_JOB,
            str(post.id),
            caller_payload(caller),
            _job_id=f"feed-post:{post.id}",
            _queue_name=FEED_QUEUE,
        )

    async def create(
        self,
        session: AsyncSession,
        ctx: FeedContext,
        caller: Identity,
        body: PostCreate,
        key: str | None,
    ) -> Post:
        """A model's new post, created generating; the same idempotency key finds it again."""
        if key and (existing := await repository.by_idempotency_key(session, caller.user_id, key)):
            return existing
        model = await self._usable_model(ctx, caller, body.model)
        key = key or uuid.uuid4().hex
        return await self._model_post(session, ctx, caller, model, body.prompt, body, key, None)

    async def reply(
        self,
        session: AsyncSession,
        ctx: FeedContext,
        caller: Identity,
        parent_id: uuid.UUID,
        body: ReplyCreate,
        key: str | None,
    ) -> Post:
        if key and (existing := await repository.by_idempotency_key(session, caller.user_id, key)):
            return existing
        parent = await self.visible(session, ctx, caller, parent_id)
        if parent.deleted or parent.status != PostStatus.PUBLISHED:
            raise PostNotPublished("Only a published post can be replied to.")
        depth = parent.depth + 1
        self._check_depth(ctx, depth, model_reply=isinstance(body, ModelReplyCreate))
        key = key or uuid.uuid4().hex
        if isinstance(body, ModelReplyCreate):
            model = await self._usable_model(ctx, caller, body.model)
            return await self._model_post(
                session, ctx, caller, model, body.instruction, body, key, parent
            )
        post = Post(
            author_kind=AuthorKind.PERSON,
            owner_id=caller.user_id,
            owner_username=caller.username,
            creator_id=caller.user_id,
            idempotency_key=key,
            content=body.text,
            status=PostStatus.PUBLISHED,
            published_at=utcnow(),
            parent_id=parent.id,
            root_id=parent.root_id,
            depth=depth,
        )
        stored = await repository.add_post(session, post)
        if stored is post:
            counts = await repository.add_replies(session, parent.id, 1)
            record_published(session, post, parent, counts)
        return stored

    async def rerun(
        self,
        session: AsyncSession,
        ctx: FeedContext,
        caller: Identity,
        post_id: uuid.UUID,
        key: str | None,
    ) -> Post:
        """A new post by the post's model with its prompt, parameters and seed, generated like
        any post (a reply is re-run as a new reply to the same post, seeing the same thread),
        by anyone who may see the post and use its model."""
        if key and (existing := await repository.by_idempotency_key(session, caller.user_id, key)):
            return existing
        original = await self.visible(session, ctx, caller, post_id)
        if original.author_kind != AuthorKind.MODEL or original.model_id is None:
            raise PostNotRerunnable("Only a model's post can be re-run; this one is a person's.")
        if original.deleted:
            raise PostNotRerunnable("This post was deleted; its prompt is gone.")
        model = await self._usable_model(ctx, caller, original.model_id)
        known = set(SamplingParams.model_fields)
        params = SamplingParams.model_construct(
            **{k: v for k, v in original.parameters.items() if k in known}, seed=original.seed
        )
        parent = None
        if original.parent_id is not None:
            parent = await self.visible(session, ctx, caller, original.parent_id)
            if parent.deleted or parent.status != PostStatus.PUBLISHED:
                raise PostNotPublished(
                    "The post this reply answered is no longer published; it cannot be re-run."
                )
            self._check_depth(ctx, parent.depth + 1, model_reply=True)
        key = key or uuid.uuid4().hex
        return await self._model_post(
            session, ctx, caller, model, original.prompt, params, key, parent
        )

    def _check_depth(self, ctx: FeedContext, depth: int, *, model_reply: bool) -> None:
        if depth > ctx.settings.max_thread_depth:
            raise ThreadTooDeep(
                f"This thread is {ctx.settings.max_thread_depth} replies deep, its limit."
            )
        if model_reply and depth > ctx.settings.max_model_reply_depth:
            raise ThreadTooDeep(
                f"Models reply at most {ctx.settings.max_model_reply_depth} levels deep; "
                "reply as yourself with 'text' instead."
            )

    async def answers(
        self,
        session: AsyncSession,
        ctx: FeedContext,
        caller: Identity,
        parent_id: uuid.UUID,
        body: AnswersCreate,
        key: str | None,
    ) -> list[Post]:
        """One model reply per model named, each its own job; with a key, each reply's key is
        `<key>:<n>`, so a retried request finds the replies it made."""
        sampling = body.model_dump(exclude={"models", "instruction"}, exclude_none=True)
        replies = []
        for n, model in enumerate(body.models):
            one = ModelReplyCreate(model=model, instruction=body.instruction, **sampling)
            replies.append(
                await self.reply(
                    session, ctx, caller, parent_id, one, f"{key}:{n}" if key else None
                )
            )
        return replies

    async def may_see(
        self,
        ctx: FeedContext,
        viewer: Identity | None,
        post: Post,
        seen: dict[uuid.UUID, bool] | None = None,
    ) -> bool:
        """A model's post is visible to whoever may use the model (asked once per model)."""
        if post.model_id is None:
            return True
        if seen is not None and post.model_id in seen:
            return seen[post.model_id]
        try:
            await ctx.models.access_by_id(post.model_id, viewer)
            visible = True
        except ModelNotFound:
            visible = False
        if seen is not None:
            seen[post.model_id] = visible
        return visible

    async def visible(
        self, session: AsyncSession, ctx: FeedContext, viewer: Identity | None, post_id: uuid.UUID
    ) -> Post:
        post = await repository.get_post(session, post_id)
        if post is None or not await self.may_see(ctx, viewer, post):
            raise PostNotFound("No such post.")
        if post.root_id != post.id:
            root = await repository.get_post(session, post.root_id)
            if root is not None and not await self.may_see(ctx, viewer, root):
                raise PostNotFound("No such post.")  # a private model's thread hides its replies
        return post

    async def thread(
        self,
        session: AsyncSession,
        ctx: FeedContext,
        viewer: Identity | None,
        post_id: uuid.UUID,
        *,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[Post], str | None]:
        """The post's whole thread from its root, oldest first; posts of models the viewer may
        not use are left out."""
        post = await self.visible(session, ctx, viewer, post_id)
        posts, next_cursor = await repository.thread_page(
            session, post.root_id, cursor=cursor, limit=limit
        )
        seen: dict[uuid.UUID, bool] = {}
        return [p for p in posts if await self.may_see(ctx, viewer, p, seen)], next_cursor

    async def delete(
        self, session: AsyncSession, ctx: FeedContext, caller: Identity, post_id: uuid.UUID
    ) -> None:
        """By the person shown on the post (the model's owner, or the replier) or an admin. A
        post with replies stays as a "deleted" placeholder so its thread holds together."""
        post = await self.visible(session, ctx, caller, post_id)
        if post.owner_id != caller.user_id and not caller.is_admin:
            raise Forbidden(
                "Only the model's owner or an administrator may delete this post.",
                code="not_post_owner",
            )
        locked = await repository.get_post(session, post.id, for_update=True)
        if locked is None or locked.deleted:
            return
        parent = None
        if locked.parent_id is not None:
            parent = await repository.get_post(session, locked.parent_id)
        if await repository.has_replies(session, locked.id):
            locked.deleted = True
            locked.content = None
            locked.prompt = None
            record_deleted(session, locked, parent, placeholder=True)
            return
        counts = None
        if locked.parent_id is not None and locked.status == PostStatus.PUBLISHED:
            counts = await repository.add_replies(session, locked.parent_id, -1)
        record_deleted(session, locked, parent, placeholder=False, parent_counts=counts)
        await repository.delete_post(session, locked.id)


post_service = PostService()
