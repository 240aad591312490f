"""A conversation as a document: JSON with everything (to keep, or to rebuild it), Markdown
with the current branch for people to read."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from services.inference.conversations.schemas import (
    ConversationExport,
    ExportedConversation,
    MessageRead,
    ParticipantRead,
)
from services.inference.models import Conversation, ConversationParticipant, Message, MessageRole

_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def to_json(
    conversation: Conversation,
    participants: list[ConversationParticipant],
    messages: list[Message],
    exported_at: datetime,
) -> ConversationExport:
    return ConversationExport(
        exported_at=exported_at,
        conversation=ExportedConversation.model_validate(conversation, from_attributes=True),
        participants=[ParticipantRead.model_validate(p) for p in participants],
        messages=[MessageRead.model_validate(m) for m in messages],
    )


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _metadata(message: Message) -> str:
    parts: list[str] = []
    if message.prompt_tokens is not None or message.completion_tokens is not None:
        parts.append(
            f"{message.prompt_tokens or 0} prompt + {message.completion_tokens or 0} "
            "completion tokens"
        )
    if message.time_to_first_token_ms is not None:
        parts.append(f"first token {message.time_to_first_token_ms:.0f} ms")
    if message.latency_ms is not None:
        parts.append(f"total {message.latency_ms:.0f} ms")
    if message.tokens_per_second is not None:
        parts.append(f"{message.tokens_per_second:.1f} tokens/s")
    if message.finish_reason:
        parts.append(f"finish: {message.finish_reason}")
    if message.trimmed_messages:
        parts.append(f"{message.trimmed_messages} oldest turns left out of the context")
    parts.append(f"status: {message.status}")
    if message.error:
        parts.append(f"error: {message.error}")
    return " · ".join(parts)


def _quoted(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines() or [""])


def to_markdown(conversation: Conversation, path: list[Message], exported_at: datetime) -> str:
    """The current branch, oldest turn first, with who said what, which model answered and
    how it went. Message text is written as it is (it is the conversation's own text)."""
    lines = [
        f"# {conversation.title or 'Untitled conversation'}",
        "",
        f"- Model: {conversation.model_ref}",
        f"- Created: {_when(conversation.created_at)}",
        f"- Last activity: {_when(conversation.updated_at)}",
        f"- Exported: {_when(exported_at)}",
        f"- Conversation id: {conversation.id}",
    ]
    if conversation.parameters:
        settings = ", ".join(f"{k}={v}" for k, v in sorted(conversation.parameters.items()))
        lines.append(f"- Parameters: {settings}")
    if conversation.system_prompt:
        lines += ["", "## System prompt", "", _quoted(conversation.system_prompt)]
    for message in path:
        lines.append("")
        if message.role == MessageRole.USER:
            lines.append(f"## User · {_when(message.created_at)}")
        else:
            lines.append(
                f"## Assistant ({message.model_ref or 'unknown model'}) · "
                f"{_when(message.created_at)}"
            )
        lines += ["", message.content]
        if message.role == MessageRole.ASSISTANT:
            lines += ["", f"*{_metadata(message)}*"]
    return "\n".join(lines) + "\n"


def filename(conversation_id: uuid.UUID, title: str, extension: str) -> str:
    stem = _UNSAFE_FILENAME.sub("-", title).strip("-")[:60] or "conversation"
    return f"{stem}-{str(conversation_id)[:8]}.{extension}"
