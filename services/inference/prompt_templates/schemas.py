"""Prompt templates as clients write and read them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from services.inference.prompt_templates.engine import VARIABLE_PATTERN
from shared.fields import Text, non_null_schema, refuse_null
from shared.pagination import Page

VariableName = Annotated[str, StringConstraints(pattern=VARIABLE_PATTERN)]
_BODY = (
    "Jinja text: {{ variable }} placeholders, {% if variable %}...{% endif %} and the "
    "filters trim, upper, lower, title, capitalize; nothing else (no attribute access, calls "
    "or loops). Its length is bounded by INFERENCE_PROMPT_TEMPLATE_MAX_CHARS."
)


class TemplateCreate(BaseModel):
    name: Text = Field(min_length=1, max_length=100)
    description: Text | None = Field(default=None, max_length=500)
    body: Text = Field(min_length=1, description=_BODY)
    variables: list[VariableName] | None = Field(
        default=None,
        description="Every placeholder the body uses, each once (checked against the body); "
        "left out, they are the body's placeholders in order of first use.",
    )


class TemplateUpdate(BaseModel):
    """Fields to change; omitted fields stay as they are (body and variables are checked
    together, as they will be)."""

    model_config = {"json_schema_extra": non_null_schema("name", "body", "variables")}

    name: Text | None = Field(default=None, min_length=1, max_length=100)
    description: Text | None = Field(default=None, max_length=500)
    body: Text | None = Field(default=None, min_length=1, description=_BODY)
    variables: list[VariableName] | None = None

    _no_null = refuse_null("name", "body", "variables")


class TemplateRead(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    body: str
    variables: list[str]
    builtin: bool = Field(description="Built-in templates are read-only and shared by everyone.")
    owner_id: uuid.UUID | None
    created_at: datetime | None
    updated_at: datetime | None


class TemplatePage(Page[TemplateRead]):
    builtin: list[TemplateRead] = Field(description="The built-in templates (on every page).")


class RenderRequest(BaseModel):
    variables: dict[VariableName, Text] = Field(
        default_factory=dict, description="A value for each of the template's variables."
    )


class RenderRead(BaseModel):
    template_id: uuid.UUID
    text: str = Field(description="The rendered prompt, as it would be sent.")
