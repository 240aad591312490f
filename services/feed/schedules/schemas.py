"""What the posting schedule endpoints accept and answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.fields import JSON_INTEGER, Text, non_null_schema, refuse_null

PROMPT_MAX_CHARS = 4000  # as a post's prompt (posts/schemas.py)
SchedulePrompt = Annotated[Text, Field(min_length=1, max_length=PROMPT_MAX_CHARS)]
# The inference service's own rule for variable names (prompt_templates/engine.py).
VariableName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,63}$")]
VariableValue = Annotated[Text, Field(max_length=PROMPT_MAX_CHARS)]


def _prompts_or_template(schema: dict[str, Any]) -> None:
    non_null_schema("prompts", "template_id")(schema)
    schema["oneOf"] = [{"required": ["prompts"]}, {"required": ["template_id"]}]
    schema["dependentRequired"] = {"variables": ["template_id"]}


class ScheduleSet(BaseModel):
    """A posting schedule: every `interval_minutes` inside the daily window (UTC hours, start
    included, end excluded; a start after the end wraps past midnight), the model posts the
    next prompt of `prompts`, round and round, or the prompt `template_id` renders to with
    `variables` (rendered afresh at each run). Give `prompts` or `template_id`, not both."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_prompts_or_template)

    interval_minutes: Annotated[int, Field(ge=1, le=7 * 24 * 60), JSON_INTEGER]
    prompts: list[SchedulePrompt] | None = Field(default=None, min_length=1, max_length=50)
    template_id: uuid.UUID | None = Field(
        default=None,
        description="A prompt template you may use (`/api/v1/prompt-templates`: a built-in one "
        "or your own), instead of `prompts`.",
    )
    variables: dict[VariableName, VariableValue] = Field(
        default_factory=dict,
        max_length=50,
        description="A value for each of the template's variables (with `template_id` only).",
    )
    window_start_hour: Annotated[int, Field(ge=0, le=23), JSON_INTEGER] = 0
    window_end_hour: Annotated[int, Field(ge=1, le=24), JSON_INTEGER] = 24
    enabled: bool = True

    _not_null = refuse_null("prompts", "template_id")

    @model_validator(mode="after")
    def _source(self) -> ScheduleSet:
        if (self.prompts is None) == (self.template_id is None):
            raise ValueError("Give either 'prompts' or 'template_id' (with 'variables'), not both.")
        if "variables" in self.model_fields_set and self.template_id is None:
            raise ValueError("'variables' fill a template: give 'template_id' with them.")
        return self

    @model_validator(mode="after")
    def _window(self) -> ScheduleSet:
        if self.window_start_hour == self.window_end_hour:
            raise ValueError("window_start_hour and window_end_hour must differ.")
        return self


class ScheduleRead(BaseModel):
    id: uuid.UUID
    model_id: uuid.UUID
    model_ref: str
    interval_minutes: int
    prompts: list[str] | None
    template_id: uuid.UUID | None
    variables: dict[str, str]
    window_start_hour: int
    window_end_hour: int
    enabled: bool
    next_run_at: datetime
    last_run_at: datetime | None
    last_error: str | None
