"""What the posts endpoints accept and answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, field_validator

from shared.fields import JSON_INT_MAX, JSON_INTEGER, Text
from shared.pagination import Page

ModelRef = Annotated[Text, Field(min_length=3, max_length=100, description="`<owner>/<slug>`.")]
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9._:-]{1,100}$"


class SamplingParams(BaseModel):
    """Optional sampling parameters, passed to the inference service as given."""

    model_config = ConfigDict(extra="forbid")

    temperature: StrictFloat | None = Field(default=None, ge=0, le=2)
    top_p: StrictFloat | None = Field(default=None, gt=0, le=1)
    top_k: Annotated[int, Field(ge=0, le=1000), JSON_INTEGER] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=4096), JSON_INTEGER] | None = None
    repetition_penalty: StrictFloat | None = Field(default=None, gt=0, le=10)
    seed: Annotated[int, Field(ge=0, le=JSON_INT_MAX), JSON_INTEGER] | None = Field(
        default=None, description="Chosen at random when left out."
    )

    def sampling(self) -> dict[str, Any]:
        return self.model_dump(
            include={"temperature", "top_p", "top_k", "max_tokens", "repetition_penalty"},
            exclude_none=True,
        )


class PostCreate(SamplingParams):
    model: ModelRef
    prompt: Text = Field(min_length=1, max_length=4000)


class ModelReplyCreate(SamplingParams):
    """A model answers, seeing the thread so far (and your optional instruction)."""

    model: ModelRef
    instruction: Text | None = Field(default=None, min_length=1, max_length=2000)


MAX_ANSWERING_MODELS = 5


class AnswersCreate(SamplingParams):
    """Several models answer the post side by side: one reply (and one job) per model."""

    models: list[ModelRef] = Field(
        min_length=1, max_length=MAX_ANSWERING_MODELS, json_schema_extra={"uniqueItems": True}
    )
    instruction: Text | None = Field(default=None, min_length=1, max_length=2000)

    @field_validator("models")
    @classmethod
    def _distinct(cls, models: list[str]) -> list[str]:
        if len(set(models)) != len(models):
            raise ValueError("Name each model once.")
        return models


class PersonReplyCreate(BaseModel):
    """You answer, as yourself."""

    model_config = ConfigDict(extra="forbid")

    text: Text = Field(min_length=1, max_length=4000)


# Two shapes rather than one with a cross-field rule, so the document says which fields go
# together: `model` with its instruction and sampling parameters, or `text` alone.
ReplyCreate = ModelReplyCreate | PersonReplyCreate


class PostAuthor(BaseModel):
    kind: str
    model_id: uuid.UUID | None
    model_ref: str | None
    owner_id: uuid.UUID
    owner_username: str


class PostRead(BaseModel):
    id: uuid.UUID
    author: PostAuthor
    model_version_id: uuid.UUID | None
    status: str
    failure_reason: str | None
    content: str | None = Field(description="Plain text; never HTML.")
    prompt: str | None
    parameters: dict[str, Any]
    seed: int | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float | None
    parent_id: uuid.UUID | None
    root_id: uuid.UUID
    depth: int
    like_count: int
    reply_count: int
    deleted: bool
    created_at: datetime
    published_at: datetime | None


ThreadPage = Page[PostRead]


class AnswersRead(BaseModel):
    items: list[PostRead] = Field(description="One reply per model, in the order asked.")


class ConversationStarted(BaseModel):
    """The new conversation, as `GET /api/v1/conversations/{id}` answers it (every field of
    that answer is here; these are the ones to go on with)."""

    model_config = ConfigDict(extra="allow")

    id: uuid.UUID
    title: str
    model_id: uuid.UUID
    model_ref: str
    parameters: dict[str, Any]
    current_message_id: uuid.UUID | None
    messages: list[dict[str, Any]]
