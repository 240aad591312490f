"""Opening a conversation from a post: the post's exchange becomes the first turns of a new
conversation of the caller in the inference service, to continue chatting with the model.

The feed writes no conversation itself: it builds a conversation document (the inference
service's JSON export format) and imports it through the inference API as the caller, so the
inference service decides whether the caller may use the model, as for any conversation.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.feed.deps import FeedContext
from services.feed.models import AuthorKind, Post, PostStatus
from services.feed.posts import repository
from services.feed.posts.service import PostNotPublished, post_service
from services.feed.posts.tasks import thread_messages
from shared.auth.identity import Identity
from shared.db import utcnow

# The parameters a conversation takes (its SamplingParameters), and the highest top_k it allows.
_CONVERSATION_PARAMETERS = ("temperature", "top_k", "top_p", "max_tokens")
_TOP_K_MAX = 200


def asked(post: Post, thread: list[Post], budget_chars: int) -> str:
    """What the model was asked: a post's prompt; for a reply, the thread it saw (each post as
    `@author: text`) and the instruction, as one user turn."""
    messages = thread_messages(post, thread, budget_chars)
    if post.parent_id is None:
        return messages[0]["content"]
    turns = [
        m["content"] if m["role"] == "user" else f"@{post.model_ref}: {m['content']}"
        for m in messages
    ]
    return "\n\n".join(turns)


def conversation_parameters(post: Post) -> dict[str, Any]:
    """The post's sampling parameters as a conversation's defaults (repetition_penalty has no
    place there; a top_k above the conversations' limit samples alike at that limit)."""
    parameters = {k: post.parameters[k] for k in _CONVERSATION_PARAMETERS if k in post.parameters}
    if isinstance(parameters.get("top_k"), int):
        parameters["top_k"] = min(parameters["top_k"], _TOP_K_MAX)
    if "temperature" in parameters:
        parameters["temperature"] = float(parameters["temperature"])
    if "top_p" in parameters:
        parameters["top_p"] = float(parameters["top_p"])
    return parameters


def document(post: Post, prompt: str) -> dict[str, Any]:
    """The conversation document: the prompt as the user's turn, the post as the answer."""
    assert post.model_id is not None
    assert post.content is not None
    published = (post.published_at or utcnow()).isoformat()
    question = {"id": "00000000-0000-4000-8000-000000000001", "parent_id": None}
    answer = {"id": "00000000-0000-4000-8000-000000000002", "parent_id": question["id"]}
    return {
        "format": "llmnet.conversation",
        "version": 1,
        "conversation": {
            "model_ref": post.model_ref,
            "parameters": conversation_parameters(post),
            "current_message_id": answer["id"],
        },
        "messages": [
            {
                **question,
                "role": "user",
                "content": prompt,
                "created_at": post.created_at.isoformat(),
            },
            {
                **answer,
                "role": "assistant",
                "content": post.content,
                "status": "complete",
                "model_id": str(post.model_id),
                "model_ref": post.model_ref,
                "model_version_id": str(post.model_version_id) if post.model_version_id else None,
                "parameters": {**post.parameters, "seed": post.seed},
                "prompt_tokens": post.prompt_tokens,
                "completion_tokens": post.completion_tokens,
                "latency_ms": post.latency_ms,
                "created_at": published,
                "completed_at": published,
            },
        ],
    }


async def open_conversation(
    session: AsyncSession, ctx: FeedContext, caller: Identity, post_id: uuid.UUID
) -> dict[str, Any]:
    """A new conversation of the caller holding the post's exchange (404 for a post the caller
    may not see, or a model they may not use; 409 for a post with no model's text)."""
    post = await post_service.visible(session, ctx, caller, post_id)
    if (
        post.author_kind != AuthorKind.MODEL
        or post.deleted
        or post.status != PostStatus.PUBLISHED
        or post.content is None
    ):
        raise PostNotPublished(
            "Only a published post by a model can be continued as a conversation."
        )
    thread = await repository.ancestors(session, post)
    prompt = asked(post, thread, ctx.settings.thread_context_chars)
    return await ctx.inference.import_conversation(caller, document(post, prompt))
