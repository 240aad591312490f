"""Conversations as clients create, change, list, read and export them."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat

from services.inference.models import MessageRole, MessageStatus, ParticipantRole
from shared.fields import (
    INT32_MAX,
    JSON_INT_MAX,
    JSON_INTEGER,
    Text,
    Timestamp,
    non_null_schema,
    refuse_null,
)

USERNAME_PATTERN = r"^[A-Za-z0-9_]{1,32}$"
TITLE_MAX = 200
SYSTEM_PROMPT_MAX = 16_000
StopSequence = Annotated[Text, Field(min_length=1, max_length=200)]
ModelRef = Annotated[Text, Field(min_length=3, max_length=100, description="`<owner>/<slug>`.")]


class SamplingParameters(BaseModel):
    """A conversation's default sampling parameters; each turn may override them. Unset ones
    fall back to the model's defaults, then the service's."""

    model_config = ConfigDict(extra="forbid")

    temperature: StrictFloat | None = Field(default=None, ge=0, le=2, description="0 is greedy.")
    top_k: Annotated[int, Field(ge=0, le=200), JSON_INTEGER] | None = Field(
        default=None, description="0 disables it."
    )
    top_p: StrictFloat | None = Field(default=None, gt=0, le=1, description="1 disables it.")
    max_tokens: Annotated[int, Field(ge=1), JSON_INTEGER] | None = Field(
        default=None,
        description="At most the model's limit (its context length, and the service's "
        "INFERENCE_MAX_TOKENS_LIMIT).",
    )
    stop: list[StopSequence] | None = Field(
        default=None, max_length=4, description="Up to 4 non-empty sequences that end an answer."
    )
    seed: Annotated[int, Field(ge=0, le=JSON_INT_MAX), JSON_INTEGER] | None = None

    def stored(self) -> dict[str, Any]:
        """What the JSONB column keeps: only what was set."""
        return self.model_dump(exclude_none=True)


class ConversationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: ModelRef
    title: Text | None = Field(
        default=None,
        min_length=1,
        max_length=TITLE_MAX,
        description="When omitted, the first message's opening words become the title.",
    )
    system_prompt: Text | None = Field(default=None, max_length=SYSTEM_PROMPT_MAX)
    parameters: SamplingParameters = Field(default_factory=SamplingParameters)
    template_id: uuid.UUID | None = Field(
        default=None, description="A prompt template messages may fill with `variables`."
    )


class ConversationUpdate(BaseModel):
    """Only the fields sent change. `model` switches the model later turns use; null clears
    the system prompt or the template (title, model and parameters cannot be null)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra=non_null_schema("title", "model", "parameters")
    )

    title: Text | None = Field(default=None, min_length=1, max_length=TITLE_MAX)
    model: ModelRef | None = None
    system_prompt: Text | None = Field(default=None, max_length=SYSTEM_PROMPT_MAX)
    parameters: SamplingParameters | None = Field(
        default=None, description="Replaces the defaults as a whole."
    )
    template_id: uuid.UUID | None = None

    _not_null = refuse_null("title", "model", "parameters")


class CurrentBranch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message_id: uuid.UUID = Field(
        description="A message of the conversation; the current branch becomes the newest "
        "path through it (down to its newest leaf)."
    )


class ViewerRole(StrEnum):
    """How the caller holds a conversation."""

    OWNER = "owner"
    READ = "read"
    WRITE = "write"


class ConversationSummary(BaseModel):
    id: uuid.UUID
    title: str = Field(description="Empty until the first message when none was given.")
    owner_id: uuid.UUID
    model_id: uuid.UUID
    model_ref: str
    role: ViewerRole = Field(description="owner, or the role the owner shared it with you.")
    created_at: datetime
    updated_at: datetime = Field(description="Last activity.")


class DayGroup(BaseModel):
    day: date = Field(description="UTC day of the conversations' last activity.")
    items: list[ConversationSummary]


class ConversationList(BaseModel):
    """One page, newest activity first, grouped by day."""

    groups: list[DayGroup]
    next_cursor: str | None = None


class MyFeedback(BaseModel):
    """The caller's own rating of an answer."""

    rating: Literal["up", "down"]
    comment: str | None


class MessageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    parent_id: uuid.UUID | None
    role: MessageRole
    author_id: uuid.UUID
    content: str
    status: MessageStatus
    error: str | None
    model_id: uuid.UUID | None
    model_ref: str | None
    model_version_id: uuid.UUID | None
    parameters: dict[str, Any]
    prompt_tokens: int | None
    completion_tokens: int | None
    time_to_first_token_ms: float | None
    latency_ms: float | None
    tokens_per_second: float | None
    finish_reason: str | None
    trimmed_messages: int
    trimmed_tokens: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class MessageView(MessageRead):
    """A message as a conversation read shows it to the caller."""

    feedback: MyFeedback | None = Field(
        default=None, description="Your rating of this answer; null when you have not rated it."
    )


class ConversationRead(ConversationSummary):
    system_prompt: str | None
    parameters: dict[str, Any]
    template_id: uuid.UUID | None
    current_message_id: uuid.UUID | None = Field(
        description="The leaf of the current branch: the next turn's context is its path."
    )
    current_path: list[uuid.UUID] = Field(description="Message ids from the root to the leaf.")
    messages: list[MessageView] = Field(description="Every message of every branch, oldest first.")


class ConversationDeleted(BaseModel):
    id: uuid.UUID
    deleted_at: datetime
    restorable_until: datetime = Field(description="`POST .../restore` undoes it until then.")


class ParticipantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=USERNAME_PATTERN, description="Who to share it with.")
    role: ParticipantRole = Field(
        default=ParticipantRole.READ, description="read, or write (read and send messages)."
    )


class ParticipantUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: ParticipantRole


class ParticipantRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: uuid.UUID
    username: str
    role: ParticipantRole
    added_at: datetime


class ExportFormat(StrEnum):
    JSON = "json"
    MARKDOWN = "markdown"


class ExportedConversation(BaseModel):
    id: uuid.UUID
    title: str
    owner_id: uuid.UUID
    model_id: uuid.UUID
    model_ref: str
    system_prompt: str | None
    parameters: dict[str, Any]
    template_id: uuid.UUID | None
    current_message_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class ConversationExport(BaseModel):
    """Everything needed to rebuild the conversation: its settings, who it is shared with, and
    every message of every branch with its metadata (parents before children)."""

    format: Literal["llmnet.conversation"] = "llmnet.conversation"
    version: Literal[1] = 1
    exported_at: datetime
    conversation: ExportedConversation
    participants: list[ParticipantRead]
    messages: list[MessageRead]


# ---- import: the JSON export read back -----------------------------------------------------------
# Bounds of one imported document; the gateway's body limit (16 MiB) holds the largest.
IMPORT_MAX_MESSAGES = 2000
IMPORT_MAX_CONTENT_CHARS = 4_000_000  # every message's content together
IMPORT_MESSAGE_MAX_CHARS = 200_000
Count = Annotated[int, Field(ge=0, le=INT32_MAX), JSON_INTEGER]
Measure = Annotated[StrictFloat, Field(ge=0, le=1e12)]


class ImportedConversation(BaseModel):
    """The `conversation` part of an export. Its id, owner, model id and timestamps are not
    read: the import is a new conversation of the caller, with the model named by `model_ref`."""

    model_config = ConfigDict(extra="ignore")

    title: Text | None = Field(
        default=None,
        max_length=TITLE_MAX,
        description="Empty or left out: the first user message's opening words.",
    )
    model_ref: ModelRef = Field(description="A model you may use; later turns use it.")
    system_prompt: Text | None = Field(default=None, max_length=SYSTEM_PROMPT_MAX)
    parameters: SamplingParameters = Field(default_factory=SamplingParameters)
    template_id: uuid.UUID | None = Field(
        default=None, description="A prompt template you may use (a built-in one, or yours)."
    )
    current_message_id: uuid.UUID | None = Field(
        default=None,
        description="One of `messages` (as the document numbers them): the current branch's "
        "leaf. Left out: the last message.",
    )


class ImportedMessage(BaseModel):
    """A message of an export: its place in the tree, role, content and metadata. `id` and
    `parent_id` only tie the document together (the import gives new ids); `author_id` is not
    read (the caller writes the conversation)."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    parent_id: uuid.UUID | None = Field(
        default=None, description="A message earlier in the list; null for a first turn."
    )
    role: MessageRole
    content: Text = Field(max_length=IMPORT_MESSAGE_MAX_CHARS)
    status: MessageStatus = MessageStatus.COMPLETE
    error: Text | None = Field(default=None, max_length=10_000)
    model_id: uuid.UUID | None = None
    model_ref: Text | None = Field(default=None, max_length=100)
    model_version_id: uuid.UUID | None = None
    parameters: dict[str, Any] = Field(default_factory=dict, max_length=32)
    prompt_tokens: Count | None = None
    completion_tokens: Count | None = None
    time_to_first_token_ms: Measure | None = None
    latency_ms: Measure | None = None
    tokens_per_second: Measure | None = None
    finish_reason: Text | None = Field(default=None, max_length=20)
    trimmed_messages: Count = 0
    trimmed_tokens: Count = 0
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    completed_at: Timestamp | None = None


class ConversationImport(BaseModel):
    """A conversation document, as `GET /api/v1/conversations/{id}/export?format=json` writes
    it: imported as a new conversation of yours with every message of every branch, their
    roles, contents and metadata. Participants are not imported (sharing is yours to choose)."""

    model_config = ConfigDict(extra="ignore")

    format: Literal["llmnet.conversation"]
    version: Literal[1]
    conversation: ImportedConversation
    participants: list[dict[str, Any]] = Field(
        default_factory=list, max_length=1000, description="Read past: not imported."
    )
    messages: list[ImportedMessage] = Field(
        default_factory=list,
        max_length=IMPORT_MAX_MESSAGES,
        description="Parents before their children, as the export lists them.",
    )
