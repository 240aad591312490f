"""The prompt lab on the wire."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.inference.models import ABArm, EvaluationStatus
from shared.fields import NUL_FREE_PATTERN
from shared.pagination import Page

PromptText = Field(min_length=1, pattern=NUL_FREE_PATTERN)


class Method(StrEnum):
    LEXICON = "lexicon"
    COUNTERFACTUAL = "counterfactual"
    JUDGE = "judge"


class LabSampling(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(default=0.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int = Field(default=48, ge=1)
    seed: int | None = Field(default=0, ge=0, le=2**31 - 1)


class AnalyzeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = PromptText
    model: str | None = Field(
        default=None,
        min_length=3,
        max_length=100,
        description="The model the counterfactual and judge methods run on (without one, only "
        "the lexicon runs).",
    )
    methods: list[Method] = Field(default_factory=lambda: list(Method), min_length=1)
    sampling: LabSampling = Field(default_factory=LabSampling)


class Finding(BaseModel):
    term: str
    category: str = Field(description="gender, nationality, religion, age, stereotype, profession")
    group: str | None = Field(description="male or female for gendered terms.")
    start: int = Field(description="Character offset in the prompt (inclusive).")
    end: int = Field(description="Character offset in the prompt (exclusive).")


class LexiconResult(BaseModel):
    flagged: bool = Field(description="Gendered, cultural, age or stereotyped terms were found.")
    findings: list[Finding]
    counts: dict[str, int]


class Swap(BaseModel):
    term: str
    replacement: str
    start: int
    end: int


class CounterfactualResult(BaseModel):
    performed: bool
    reason: str | None = None
    flagged: bool = False
    rule: str
    swaps: list[Swap] = Field(default_factory=list)
    swapped_prompt: str | None = None
    original_output: str | None = None
    swapped_output: str | None = None
    similarity: float | None = Field(
        default=None, description="TF-IDF cosine of the two outputs, gendered words neutralised."
    )
    valence_difference: float | None = None


class JudgeResult(BaseModel):
    performed: bool
    reason: str | None = None
    flagged: bool = False
    verdict: Literal["biased", "not_biased", "unclear"] | None = None
    explanation: str | None = None
    spans: list[Finding] = Field(
        default_factory=list, description="Terms of the prompt the judge named."
    )


class Change(BaseModel):
    start: int
    end: int
    original: str
    replacement: str


class Rewrite(BaseModel):
    method: Literal["rule", "model"]
    text: str
    model: str | None = None
    changes: list[Change] = Field(default_factory=list)


class AnalyzeRead(BaseModel):
    prompt: str
    flagged: bool = Field(description="Any method flagged the prompt.")
    lexicon: LexiconResult | None
    counterfactual: CounterfactualResult | None
    judge: JudgeResult | None
    suggestions: list[Rewrite] = Field(description="Rule-based rewrites (see /rewrite).")


class RewriteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = PromptText
    model: str | None = Field(
        default=None, min_length=3, max_length=100, description="For a model-assisted rewrite."
    )
    sampling: LabSampling = Field(default_factory=lambda: LabSampling(max_tokens=96))


class RewriteRead(BaseModel):
    prompt: str
    suggestions: list[Rewrite]


class ABCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    original: str = PromptText
    rewrite: str = PromptText
    models: list[str] = Field(min_length=1, description="Model refs, `<owner>/<slug>`.")
    samples: int = Field(default=3, ge=1, description="Samples per model and arm.")
    sampling: LabSampling = Field(default_factory=lambda: LabSampling(temperature=0.8))


class ABOutputRead(BaseModel):
    model: str
    arm: ABArm
    sample: int
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    metrics: dict[str, Any]


class ABRunRead(BaseModel):
    id: uuid.UUID
    status: EvaluationStatus
    original: str
    rewrite: str
    models: list[str]
    samples: int
    parameters: dict[str, Any]
    summary: dict[str, Any] | None = Field(
        description="Per model: each arm's metric means and `difference` (rewrite - original)."
    )
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    outputs: list[ABOutputRead]


class ABRunSummary(BaseModel):
    id: uuid.UUID
    status: EvaluationStatus
    models: list[str]
    samples: int
    created_at: datetime
    finished_at: datetime | None


ABRunPage = Page[ABRunSummary]
