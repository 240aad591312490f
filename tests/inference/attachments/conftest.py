"""Attachment fixtures: conversations written straight to the tables (creating them is the
conversations domain's), participants, and an upload helper."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from services.inference.models import Conversation, ConversationParticipant
from shared.db import session_scope
from tests.factories import UserSession


async def conversation_of(
    platform: Any, owner: UserSession, model_id: str | uuid.UUID, *, title: str = "chat"
) -> str:
    async with session_scope(platform.sessionmaker) as session:
        conversation = Conversation(
            owner_id=uuid.UUID(owner.id),
            title=title,
            model_id=uuid.UUID(str(model_id)),
            model_ref="owner/tiny",
            parameters={},
        )
        session.add(conversation)
        await session.flush()
        return str(conversation.id)


async def share(platform: Any, conversation_id: str, user: UserSession, role: str) -> None:
    async with session_scope(platform.sessionmaker) as session:
        session.add(
            ConversationParticipant(
                conversation_id=uuid.UUID(conversation_id),
                user_id=uuid.UUID(user.id),
                username=user.username,
                role=role,
            )
        )


def path(conversation_id: str, *rest: str) -> str:
    return "/".join([f"/api/v1/conversations/{conversation_id}/attachments", *rest])


async def upload(
    client: httpx.AsyncClient,
    user: UserSession,
    conversation_id: str,
    name: str,
    content: bytes,
    *,
    field: str = "file",
) -> httpx.Response:
    return await client.post(
        path(conversation_id), files={field: (name, content)}, headers=user.headers
    )


@pytest.fixture
async def chat(platform, owner, llama) -> str:  # type: ignore[no-untyped-def]
    """A conversation of `owner` with the tiny llama (a local model: its tokenizer counts)."""
    return await conversation_of(platform, owner, llama["id"])
