"""A turn's context: the current path as chat messages, trimmed from the oldest turns to fit.

The system message carries the system prompt and the attachments (every chat template takes
context there); it is always kept. Turns leave from the oldest, a whole turn at a time (a user
message and the answers after it), so the history still starts with a user message as
templates expect. The prompt ids are the engine's own chat template rendering
(`Engine.chat_prompt`), counted once per candidate start (a binary search over the starts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.inference.attachments.service import AttachmentContext
from services.inference.models import Message
from shared.errors import BadRequest

if TYPE_CHECKING:
    from services.inference.engine import Engine

ChatMessages = list[dict[str, str]]


class ContextTooLong(BadRequest):
    code = "context_too_long"


@dataclass(frozen=True, slots=True)
class Context:
    messages: ChatMessages
    prompt_ids: list[int] | None  # None for remote models (no local tokenizer)
    trimmed_messages: int = 0
    trimmed_tokens: int = 0


def system_text(system_prompt: str | None, attachments: Sequence[AttachmentContext]) -> str | None:
    parts = [system_prompt] if system_prompt else []
    for attachment in attachments:
        note = " (truncated)" if attachment.truncated else ""
        parts.append(f"Attached file {attachment.filename}{note}:\n{attachment.text}")
    return "\n\n".join(parts) or None


def chat_messages(system: str | None, path: Sequence[Message]) -> ChatMessages:
    messages = [{"role": "system", "content": system}] if system else []
    messages.extend({"role": m.role, "content": m.content} for m in path)
    return messages


def fit(engine: Engine, system: str | None, path: Sequence[Message], room: int) -> Context:
    """The newest turns of `path` (which ends with the new user message) whose prompt has at
    most `room` tokens; 400 when the system message and the last turn alone do not fit."""
    head = [{"role": "system", "content": system}] if system else []
    turns = [i for i, m in enumerate(path) if m.role == "user"] or [0]

    def render(start: int) -> list[int]:
        return engine.chat_prompt(head + chat_messages(None, path[start:]))

    full = render(0)
    if len(full) <= room:
        return Context(head + chat_messages(None, path), full)
    last = render(turns[-1])
    if len(last) > room:
        alone = len(engine.chat_prompt(head)) if head else 0
        if head and alone > room:
            raise ContextTooLong(
                f"The system prompt and attachments alone take {alone} tokens, more than the "
                f"{room} this model has for a prompt after max_tokens; shorten them, remove an "
                "attachment or lower max_tokens."
            )
        raise ContextTooLong(
            f"This message and the context it must keep take {len(last)} tokens, more than the "
            f"{room} this model has for a prompt after max_tokens; shorten the message or lower "
            "max_tokens."
        )
    # The smallest start (most history) that fits: prompts shrink as the start moves on.
    low, high, best_ids, best = 1, len(turns) - 1, last, len(turns) - 1
    while low <= high:
        middle = (low + high) // 2
        ids = render(turns[middle])
        if len(ids) <= room:
            best, best_ids, high = middle, ids, middle - 1
        else:
            low = middle + 1
    start = turns[best]
    return Context(
        head + chat_messages(None, path[start:]),
        best_ids,
        trimmed_messages=start,
        trimmed_tokens=len(full) - len(best_ids),
    )
