"""Conversations and messages as moderators read them."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.inference.models import MessageRole, MessageStatus


class ModeratedConversation(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    model_id: uuid.UUID
    model_ref: str
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


class ModeratedMessage(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    conversation_id: uuid.UUID
    parent_id: uuid.UUID | None
    role: MessageRole
    author_id: uuid.UUID
    content: str
    status: MessageStatus
    model_id: uuid.UUID | None
    model_ref: str | None
    created_at: datetime


class ModeratedMessageRead(ModeratedMessage):
    """A message as the search lists it: with its author's name and its conversation's title."""

    author_username: str | None = Field(
        default=None, description="The author's username (null: an account since deleted)."
    )
    conversation_title: str = ""


CONVERSATION_COLUMNS = list(ModeratedConversation.model_fields)
MESSAGE_COLUMNS = list(ModeratedMessage.model_fields)
