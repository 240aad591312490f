"""Fine-tune jobs as clients see them, and the hyperparameters they choose."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.models_hub.models import FineTuneMethod, FineTuneStatus


class Hyperparameters(BaseModel):
    """What a fine-tune trains with; each is bounded by the hub's settings (422 past them)."""

    model_config = ConfigDict(extra="forbid")

    method: FineTuneMethod = FineTuneMethod.LORA
    epochs: int = Field(
        default=3, ge=1, description="At most MODELS_HUB_FINETUNE_MAX_EPOCHS (100 by default)."
    )
    learning_rate: float = Field(
        default=2e-4,
        gt=0,
        description="Between MODELS_HUB_FINETUNE_MIN_LEARNING_RATE and "
        "MODELS_HUB_FINETUNE_MAX_LEARNING_RATE (1e-7 and 0.1 by default).",
    )
    batch_size: int = Field(
        default=4,
        ge=1,
        description="At most MODELS_HUB_FINETUNE_MAX_BATCH_SIZE (64 by default).",
    )
    max_seq_length: int = Field(
        default=512,
        ge=8,
        description="Tokens per example, at most MODELS_HUB_FINETUNE_MAX_SEQ_LENGTH (4096 by "
        "default); every example must fit.",
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    lora_rank: int = Field(default=8, ge=1, le=256, description="LoRA only: adapter rank.")
    lora_alpha: int = Field(default=16, ge=1, le=1024, description="LoRA only: scaling.")


class DatasetInfo(BaseModel):
    name: str
    size: int
    sha256: str
    examples: int
    tokens: int = Field(description="Tokens the loss is taken on, per epoch.")


class Progress(BaseModel):
    """The latest report of a running fine-tune (also each `finetune.progress` event)."""

    step: int = 0
    total_steps: int = 0
    epoch: float = 0
    train_loss: float | None = None
    validation_loss: float | None = None
    tokens_per_second: float | None = None
    eta_seconds: float | None = None
    percent: float = 0


class FineTuneRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    model_id: uuid.UUID
    owner_id: uuid.UUID
    base_version_id: uuid.UUID | None
    result_version_id: uuid.UUID | None = Field(
        description="The version the fine-tune made (validated like an upload); null until "
        "it exists."
    )
    status: FineTuneStatus = Field(description="queued, running, succeeded, failed, cancelled.")
    error: str | None = Field(description="Why it failed or was cancelled.")
    cancel_requested: bool
    queue_position: int | None = Field(
        default=None, description="1 for the next job to start; null unless queued."
    )
    method: FineTuneMethod
    hyperparameters: dict[str, Any]
    datasets: dict[str, DatasetInfo]
    progress: Progress
    metrics: list[Progress] = Field(description="Every recorded report, in order.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class FineTuneEvent(BaseModel):
    """`data` of a fine-tune's SSE events: `status` when its state changes, `progress` per
    report. The stream ends after the final state's event."""

    fine_tune_id: uuid.UUID
    status: FineTuneStatus
    progress: Progress | None = None
    error: str | None = None
    result_version_id: uuid.UUID | None = None


class LineageNode(BaseModel):
    """A version in a model's version tree."""

    id: uuid.UUID
    number: int
    status: str
    is_active: bool
    parent_version_id: uuid.UUID | None
    lineage: dict[str, Any] = Field(
        description="For fine-tuned versions: fine_tune_id, base_version_id, dataset_sha256, "
        "hyperparameters, final_train_loss, final_validation_loss."
    )
    created_at: datetime
    children: list[LineageNode] = Field(default_factory=list)


class LineageRead(BaseModel):
    model_id: uuid.UUID
    roots: list[LineageNode] = Field(description="Versions with no parent, oldest first.")
