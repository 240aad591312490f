"""Evaluations on the wire: the request, the stored evaluation, prompt sets, comparisons."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.inference.models import EvaluationStatus
from shared.fields import NUL_FREE_PATTERN
from shared.pagination import Page

_ID = r"^[A-Za-z0-9_.-]{1,64}$"


class SetKind(StrEnum):
    CONSISTENCY = "consistency"
    GENDER = "gender"
    PAIRED = "paired"
    GENERAL = "general"


class SetPrompt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_ID)
    text: str = Field(min_length=1, max_length=4000, pattern=NUL_FREE_PATTERN)


class SetPair(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_ID)
    a: str = Field(min_length=1, max_length=4000, pattern=NUL_FREE_PATTERN)
    b: str = Field(min_length=1, max_length=4000, pattern=NUL_FREE_PATTERN)
    groups: list[Annotated[str, Field(max_length=100, pattern=NUL_FREE_PATTERN)]] = Field(
        min_length=2, max_length=2, description="The groups of a and b."
    )


class PromptSet(BaseModel):
    """A built-in set (services/inference/evaluations/prompt_sets/) or one a user sends."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_ID)
    version: int = Field(default=1, ge=1)
    kind: SetKind
    probe: str | None = Field(default=None, pattern=_ID, description="Paired sets: the probe.")
    description: str = Field(default="", max_length=2000, pattern=NUL_FREE_PATTERN)
    prompts: list[SetPrompt] = Field(default_factory=list, max_length=500)
    pairs: list[SetPair] = Field(default_factory=list, max_length=500)

    @model_validator(mode="after")
    def _shape(self) -> PromptSet:
        if self.kind is SetKind.PAIRED:
            if not self.pairs or self.prompts:
                raise ValueError("a paired set has `pairs` (and no `prompts`)")
        elif not self.prompts or self.pairs:
            raise ValueError(f"a {self.kind} set has `prompts` (and no `pairs`)")
        ids = [p.id for p in self.prompts] + [p.id for p in self.pairs]
        if len(ids) != len(set(ids)):
            raise ValueError("prompt ids must be unique within a set")
        return self

    @property
    def generations(self) -> int:
        """Answers one pass over the set needs (consistency prompts count once per repeat)."""
        return len(self.prompts) + 2 * len(self.pairs)


class PromptSetSummary(BaseModel):
    name: str
    version: int
    kind: SetKind
    probe: str | None
    description: str
    size: int


class Sampling(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(default=0.8, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int = Field(default=64, ge=1)
    seed: int | None = Field(
        default=None, ge=0, le=2**31 - 1, description="Base seed; repeat i uses seed + i."
    )


class EvaluationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(
        default=None,
        ge=1,
        description="The version number to evaluate; it must be the model's active version "
        "(the one the inference service serves). Default: the active version.",
    )
    prompt_sets: list[str] | None = Field(
        default=None,
        max_length=20,
        description="Built-in sets by `name` or `name@version`; default: all built-in sets "
        "(an empty list: only `custom_sets`).",
    )
    custom_sets: list[PromptSet] = Field(default_factory=list, max_length=10)
    sampling: Sampling = Field(default_factory=Sampling)
    repeats: int = Field(default=3, ge=2, description="Samples per consistency prompt.")
    heldout_text: str | None = Field(
        default=None,
        min_length=1,
        pattern=NUL_FREE_PATTERN,
        description="Held-out text whose perplexity the report gives (optional).",
    )


class EvaluationRead(BaseModel):
    id: uuid.UUID
    model_id: uuid.UUID
    model_ref: str
    version_id: uuid.UUID | None
    version_number: int | None
    status: EvaluationStatus
    progress: float = Field(description="0 to 1.")
    done: int
    total: int
    parameters: dict[str, Any]
    prompt_sets: list[PromptSetSummary]
    report: dict[str, Any] | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class EvaluationSummary(BaseModel):
    """An evaluation in a list (no report body)."""

    id: uuid.UUID
    model_id: uuid.UUID
    model_ref: str
    version_number: int | None
    status: EvaluationStatus
    progress: float
    created_at: datetime
    finished_at: datetime | None


EvaluationPage = Page[EvaluationSummary]


class MetricDifference(BaseModel):
    metric: str
    a: float | str | None
    b: float | str | None
    difference: float | None = Field(description="b - a, for numbers.")
    relative: float | None = Field(description="(b - a) / |a|, when a is a non-zero number.")
    better: Literal["a", "b", "same"] | None = Field(
        description="Which side is better by this metric's direction (None: no direction)."
    )
    highlight: bool = Field(description="The difference is large enough to point out.")


class EvaluationComparison(BaseModel):
    a: EvaluationSummary
    b: EvaluationSummary
    metrics: list[MetricDifference]


class ProgressEvent(BaseModel):
    """`data` of an evaluation's `progress` events."""

    status: EvaluationStatus
    stage: str
    done: int
    total: int
    percent: float
    error: str | None = None
