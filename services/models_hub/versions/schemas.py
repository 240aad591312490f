"""Model versions as clients see them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.models_hub.models import VersionFormat, VersionStatus
from services.models_hub.versions.formats import FileKind

# What an upload's file names may be (versions/upload.py, clean_name): '/'-separated segments of
# letters, digits, '.', '_' and '-', each starting with a letter or digit.
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}"
FILE_NAME_PATTERN = rf"^{_SEGMENT}(/{_SEGMENT})*$"


class VersionFile(BaseModel):
    name: str
    size: int
    sha256: str
    kind: FileKind


class VersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    model_id: uuid.UUID
    number: int
    status: VersionStatus = Field(description="uploading, validating, ready or failed.")
    error: str | None = Field(description="Why validation failed, and what to do about it.")
    format: VersionFormat | None
    files: list[VersionFile]
    total_size: int
    details: dict[str, Any] = Field(
        description="What validation found: architecture, parameter_count, dtype, "
        "context_length, vocab_size, has_chat_template, load_seconds, tokens_per_second."
    )
    is_active: bool = False
    parent_version_id: uuid.UUID | None = Field(
        default=None, description="The version this one was fine-tuned from."
    )
    lineage: dict[str, Any] = Field(
        default_factory=dict,
        description="For fine-tuned versions: fine_tune_id, base_version_id, dataset_sha256, "
        "hyperparameters, final_train_loss, final_validation_loss.",
    )
    created_at: datetime
    validated_at: datetime | None
