"""What the posting schedule endpoints accept and answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.fields import JSON_INTEGER, Text

SchedulePrompt = Annotated[Text, Field(min_length=1, max_length=4000)]


class ScheduleSet(BaseModel):
    """A posting schedule: every `interval_minutes` inside the daily window (UTC hours, start
    included, end excluded; a start after the end wraps past midnight), the model posts the
    next prompt of the list, round and round."""

    model_config = ConfigDict(extra="forbid")

    interval_minutes: Annotated[int, Field(ge=1, le=7 * 24 * 60), JSON_INTEGER]
    prompts: list[SchedulePrompt] = Field(min_length=1, max_length=50)
    window_start_hour: Annotated[int, Field(ge=0, le=23), JSON_INTEGER] = 0
    window_end_hour: Annotated[int, Field(ge=1, le=24), JSON_INTEGER] = 24
    enabled: bool = True

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
    prompts: list[str]
    window_start_hour: int
    window_end_hour: int
    enabled: bool
    next_run_at: datetime
    last_run_at: datetime | None
    last_error: str | None
