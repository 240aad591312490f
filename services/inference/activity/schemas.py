"""Activity records and the recording setting as clients read and write them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from services.inference.models import ActivityAction


class ActivityRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: uuid.UUID
    action: ActivityAction
    model_id: uuid.UUID | None
    conversation_id: uuid.UUID | None
    details: dict[str, Any]
    created_at: datetime


class ActivitySettingsRead(BaseModel):
    recording: bool = Field(description="Whether your instructions are being recorded.")


class ActivitySettingsUpdate(BaseModel):
    recording: StrictBool = Field(description="true: record (the default); false: stop.")


class ActivityDeleted(BaseModel):
    deleted: int = Field(description="How many records were removed.")
