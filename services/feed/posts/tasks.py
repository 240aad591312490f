"""Post jobs (arq): generate a post's text through the inference API; fail the stuck ones.

Idempotent and crash-safe: the job re-reads its post and does nothing unless it is still
`generating`, and its outcome is written with `WHERE status = 'generating'`, so a retry after
success (or after the sweeper gave up on it) never writes a second outcome, and no job ever
creates a post. A worker that dies mid-generation leaves the post generating: arq runs the job
again, and past `post_timeout_seconds` the sweeper fails it with a reason.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta
from typing import Any

from arq import Retry

from services.feed.deps import FeedContext
from services.feed.models import Post, PostStatus
from services.feed.posts import repository
from services.feed.posts.events import record_published
from services.feed.posts.inference import GenerationRejected, GenerationUnavailable
from services.feed.posts.service import caller_from
from shared.db import session_scope, utcnow

logger = logging.getLogger("llmnet.feed.posts")
MAX_TRIES = 5
_REPLY_ASK = "Write your reply to the last post."
# C0 controls but tab and newline: PostgreSQL text refuses NUL, and none of them is plain text.
_CONTROLS = dict.fromkeys(c for c in range(32) if c not in (9, 10))


def plain_text(generated: str) -> str:
    """Model output as storable plain text: no control characters, no lone surrogates."""
    return generated.translate(_CONTROLS).encode("utf-8", "replace").decode("utf-8")


def _turn(post: Post, said: Post, limit: int) -> dict[str, str]:
    text = (said.content or "")[:limit]
    if said.model_id is not None and said.model_id == post.model_id:
        return {"role": "assistant", "content": text}
    return {"role": "user", "content": f"@{said.model_ref or said.owner_username}: {text}"}


def thread_messages(post: Post, thread: list[Post], budget_chars: int) -> list[dict[str, str]]:
    """The chat a model sees: for a post its prompt; for a reply the thread from the root to
    the parent (the model's own posts as `assistant`, everyone else's as `user` naming the
    author), then the instruction. Each post is cut to half the budget, so the root (what the
    thread is about) and the parent (what is answered) always fit; the newest posts between
    them fill the rest, the oldest dropped first."""
    if post.parent_id is None:
        return [{"role": "user", "content": post.prompt or ""}]
    turns = [_turn(post, p, budget_chars // 2) for p in thread if p.content and not p.deleted]
    head, rest = turns[:1], turns[1:]
    used = sum(len(t["content"]) for t in head)
    kept: list[dict[str, str]] = []
    for turn in reversed(rest):
        if used + len(turn["content"]) > budget_chars:
            break
        kept.insert(0, turn)
        used += len(turn["content"])
    return [*head, *kept, {"role": "user", "content": post.prompt or _REPLY_ASK}]


async def _fail(ctx: FeedContext, post_id: uuid.UUID, reason: str) -> str:
    async with session_scope(ctx.sessionmaker) as session:
        await repository.finish(session, post_id, status=PostStatus.FAILED, failure_reason=reason)
    return "failed"


async def generate_post(ctx: dict[str, Any], post_id: str, caller: dict[str, Any]) -> str:
    """The job: its outcome ("skipped", "failed" or "published") is for the worker's log."""
    feed: FeedContext = ctx["feed"]
    async with session_scope(feed.sessionmaker) as session:
        post = await repository.get_post(session, uuid.UUID(post_id))
        if post is None or post.status != PostStatus.GENERATING or post.model_ref is None:
            return "skipped"
        thread = await repository.ancestors(session, post)
    messages = thread_messages(post, thread, feed.settings.thread_context_chars)
    parameters = {**post.parameters, "seed": post.seed}
    started = time.monotonic()
    try:
        completion = await feed.inference.chat(
            caller_from(caller), post.model_ref, messages, parameters
        )
    except GenerationRejected as rejected:
        return await _fail(feed, post.id, rejected.reason)
    except GenerationUnavailable as exc:
        tries = int(ctx.get("job_try", 1))
        if tries < MAX_TRIES:
            logger.info("post %s: %s; retrying", post_id, exc)
            raise Retry(defer=tries * 5) from exc
        return await _fail(feed, post.id, f"The model could not be reached after {tries} attempts.")
    async with session_scope(feed.sessionmaker) as session:
        published = await repository.finish(
            session,
            post.id,
            status=PostStatus.PUBLISHED,
            content=plain_text(completion.content),
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            latency_ms=(time.monotonic() - started) * 1000,
            published_at=utcnow(),
        )
        if published is None:
            return "skipped"
        parent, counts = None, None
        if published.parent_id is not None:
            counts = await repository.add_replies(session, published.parent_id, 1)
            parent = await repository.get_post(session, published.parent_id)
        record_published(session, published, parent, counts)
    return "published"


async def sweep_posts(ctx: dict[str, Any]) -> dict[str, int]:
    """Fail posts still generating past the timeout (their jobs died or gave up)."""
    feed: FeedContext = ctx["feed"]
    timeout = feed.settings.post_timeout_seconds
    async with session_scope(feed.sessionmaker) as session:
        failed = await repository.fail_stuck(
            session,
            utcnow() - timedelta(seconds=timeout),
            f"The post was not written within {timeout} seconds; try again.",
        )
    return {"failed": len(failed)}
