"""Conversation helpers: create through the gateway; messages written straight to the tables
(sending is the messages domain's; these tests need only stored turns)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import update

from services.inference.models import Conversation, Message
from shared.db import session_scope
from tests.factories import UserSession

BASE = "/api/v1/conversations"


async def create_conversation(
    client: httpx.AsyncClient, user: UserSession, model_ref: str, **fields: Any
) -> dict[str, Any]:
    response = await client.post(BASE, json={"model": model_ref, **fields}, headers=user.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def add_message(
    platform: Any,
    conversation_id: str,
    content: str,
    *,
    role: str = "user",
    parent_id: str | None = None,
    author_id: str | None = None,
    current: bool = True,
    created_at: datetime | None = None,
    **fields: Any,
) -> str:
    """A stored message (its own transaction, so each has its own timestamp); by default the
    conversation's current leaf becomes it."""
    async with session_scope(platform.sessionmaker) as session:
        conversation = await session.get(Conversation, uuid.UUID(conversation_id))
        assert conversation is not None
        message = Message(
            conversation_id=conversation.id,
            parent_id=uuid.UUID(parent_id) if parent_id else None,
            role=role,
            author_id=uuid.UUID(author_id) if author_id else conversation.owner_id,
            content=content,
            parameters={},
            **fields,
        )
        if created_at is not None:
            message.created_at = created_at
        session.add(message)
        await session.flush()
        if current:
            conversation.current_message_id = message.id
        return str(message.id)


async def set_activity(platform: Any, conversation_id: str, **values: Any) -> None:
    """Move a conversation's timestamps (last activity, deletion) to test days and windows."""
    async with session_scope(platform.sessionmaker) as session:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == uuid.UUID(conversation_id))
            .values(**values)
        )
