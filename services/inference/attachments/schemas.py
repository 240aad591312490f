"""Attachments as clients read them."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from services.inference.models import AttachmentKind, TokenCounter


class AttachmentRead(BaseModel):
    id: uuid.UUID
    conversation_id: uuid.UUID
    uploader_id: uuid.UUID
    filename: str
    kind: AttachmentKind = Field(description="Recognised from the content, not the name.")
    size: int = Field(description="Bytes of the original file.")
    sha256: str
    tokens: int = Field(description="Tokens of the text kept as context.")
    extracted_tokens: int = Field(description="Tokens of all the text read, before any cut.")
    truncated: bool = Field(description="Whether the text was cut to the token limit.")
    token_counter: TokenCounter = Field(
        description="`model`: counted by the conversation model's tokenizer; `estimate`: about "
        "4 characters a token (models at external providers)."
    )
    note: str | None = Field(description="Says what was left out, when the text was cut.")
    created_at: datetime


class AttachmentDetail(AttachmentRead):
    text: str = Field(description="The extracted text, as it goes into the context.")
