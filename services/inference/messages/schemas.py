"""Messages as clients send, regenerate, watch and rate them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from services.inference.conversations.schemas import MessageRead, ModelRef, SamplingParameters
from shared.fields import Text, non_null_schema, refuse_null

CONTENT_MAX = 100_000
VARIABLE_MAX = 20_000


VariableName = Annotated[str, Field(min_length=1, max_length=100)]
VariableValue = Annotated[Text, Field(max_length=VARIABLE_MAX)]


def _one_of_content_or_variables(schema: dict[str, Any]) -> None:
    non_null_schema("content", "variables", "template_id")(schema)
    schema["oneOf"] = [{"required": ["content"]}, {"required": ["variables"]}]
    schema["dependentRequired"] = {"template_id": ["variables"]}


class MessageCreate(BaseModel):
    """A user turn: `content`, or `variables` that fill a prompt template (the message's
    `template_id`, else the conversation's)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_of_content_or_variables)

    content: Text | None = Field(default=None, min_length=1, max_length=CONTENT_MAX)
    variables: dict[VariableName, VariableValue] | None = Field(
        default=None, description="Values of the template's variables, instead of `content`."
    )
    template_id: uuid.UUID | None = Field(
        default=None, description="The template `variables` fill (default: the conversation's)."
    )
    parent_id: uuid.UUID | None = Field(
        default=None,
        description="The assistant message this turn answers (default: the current branch's "
        "leaf; null: a new first turn). Editing a user message is sending one with the edited "
        "message's parent: the edit becomes its sibling, a new branch.",
    )
    parameters: SamplingParameters = Field(
        default_factory=SamplingParameters, description="Override the conversation's defaults."
    )
    stream: StrictBool | None = Field(
        default=None,
        description="Server-sent events (default: when the request accepts text/event-stream).",
    )

    _not_null = refuse_null("content", "variables", "template_id")

    @model_validator(mode="after")
    def _content_or_variables(self) -> MessageCreate:
        if (self.content is None) == (self.variables is None):
            raise ValueError("send either `content` or template `variables`, not both")
        if self.template_id is not None and self.variables is None:
            raise ValueError("`template_id` goes with `variables`")
        return self


class RegenerateRequest(BaseModel):
    """Another answer to the same user turn: a sibling of the old one."""

    model_config = ConfigDict(extra="forbid")

    model: ModelRef | None = Field(
        default=None, description="Another model for this answer (default: the conversation's)."
    )
    parameters: SamplingParameters = Field(
        default_factory=SamplingParameters, description="Override the conversation's defaults."
    )
    stream: StrictBool | None = None


class MessageExchange(BaseModel):
    """A finished turn (the JSON answer): the user message (none for a regeneration) and the
    assistant's answer."""

    user_message: MessageRead | None
    message: MessageRead


class MessageStart(BaseModel):
    """Event `start`: the answer begins (ids, trimmed context)."""

    user_message: MessageRead | None
    message: MessageRead


class MessageDelta(BaseModel):
    """Event `delta`: the next piece of the answer's text."""

    text: str


class FeedbackUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: Literal["up", "down"]
    comment: Text | None = Field(default=None, max_length=2000)


class FeedbackRead(BaseModel):
    message_id: uuid.UUID
    user_id: uuid.UUID
    rating: Literal["up", "down"]
    comment: str | None
    created_at: datetime
    updated_at: datetime


class VersionFeedback(BaseModel):
    model_version_id: uuid.UUID | None
    up: int
    down: int
    comments: int


class FeedbackSummary(BaseModel):
    """Thumbs on a model's answers, per model version (owners and admins only)."""

    model_id: uuid.UUID
    model_ref: str
    versions: list[VersionFeedback]
