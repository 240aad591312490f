"""A turn's context: the current path as chat messages, trimmed from the oldest turns to fit.

The system message carries the system prompt and the attachments (every chat template takes
context there); it is always kept. Turns leave from the oldest, a whole turn at a time (a user
message and the answers after it), so the history still starts with a user message as
templates expect. A local model's prompt is counted exactly, as the engine's own chat template
rendering (`Engine.chat_prompt`); a remote model's (its owner stated its context length) by an
overestimate. Either is counted once per candidate start (a binary search over the starts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


Count = Callable[[ChatMessages], tuple[int, list[int] | None]]


def engine_count(engine: Engine) -> Count:
    """Exact: the engine's own chat-template rendering (the prompt ids it will run)."""

    def count(messages: ChatMessages) -> tuple[int, list[int] | None]:
        ids = engine.chat_prompt(messages)
        return len(ids), ids

    return count


def estimated_count(messages: ChatMessages) -> tuple[int, list[int] | None]:
    """A remote model's tokens, overestimated (its tokenizer is not here): a token per three
    UTF-8 bytes (BPE vocabularies average about four characters of English text) plus each
    message's framing, so a trimmed history fits with room to spare."""
    return sum(-(-len(m["content"].encode()) // 3) + 6 for m in messages) + 3, None


def fit(count: Count, system: str | None, path: Sequence[Message], room: int) -> Context:
    """The newest turns of `path` (which ends with the new user message) whose prompt has at
    most `room` tokens by `count`; 400 when the system message and the last turn alone do not
    fit."""
    head = [{"role": "system", "content": system}] if system else []
    turns = [i for i, m in enumerate(path) if m.role == "user"] or [0]

    def render(start: int) -> tuple[int, list[int] | None]:
        return count(head + chat_messages(None, path[start:]))

    full, full_ids = render(0)
    if full <= room:
        return Context(head + chat_messages(None, path), full_ids)
    last, last_ids = render(turns[-1])
    if last > room:
        alone = count(head)[0] if head else 0
        if head and alone > room:
            raise ContextTooLong(
                f"The system prompt and attachments alone take {alone} tokens, more than the "
                f"{room} this model has for a prompt after max_tokens; shorten them, remove an "
                "attachment or lower max_tokens."
            )
        raise ContextTooLong(
            f"This message and the context it must keep take {last} tokens, more than the "
            f"{room} this model has for a prompt after max_tokens; shorten the message or lower "
            "max_tokens."
        )
    # The smallest start (most history) that fits: prompts shrink as the start moves on.
    low, high = 1, len(turns) - 1
    best, best_size, best_ids = len(turns) - 1, last, last_ids
    while low <= high:
        middle = (low + high) // 2
        size, ids = render(turns[middle])
        if size <= room:
            best, best_size, best_ids, high = middle, size, ids, middle - 1
        else:
            low = middle + 1
    start = turns[best]
    return Context(
        head + chat_messages(None, path[start:]),
        best_ids,
        trimmed_messages=start,
        trimmed_tokens=full - best_size,
    )
