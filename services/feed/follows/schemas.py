"""What the model follow endpoints answer."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field


class ModelFollowState(BaseModel):
    model_id: uuid.UUID
    following: bool = Field(description="Whether the caller follows the model (false anonymously).")
    followers_count: int
