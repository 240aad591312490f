"""OpenAI-compatible request bodies (the subset we serve, with clear refusals for the rest)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] = Field(description="Text, or a list of text parts.")
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    include_usage: bool = False


class _GenerationFields(BaseModel):
    # Unknown OpenAI fields (logit_bias, tools, ...) are refused by name rather than ignored.
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=3, max_length=100, description="`<owner>/<slug>`.")
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0, description="Extension: 0 disables.")
    repetition_penalty: float | None = Field(default=None, gt=0, le=10, description="Extension.")
    stop: str | list[str] | None = Field(default=None)
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=1, description="Only one choice per request.")
    stream: bool = False
    stream_options: StreamOptions | None = None
    frequency_penalty: float = Field(default=0, ge=0, le=0, description="Not supported: 0.")
    presence_penalty: float = Field(default=0, ge=0, le=0, description="Not supported: 0.")
    user: str | None = Field(default=None, max_length=256)

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> list[str] | None:
        stops = [value] if isinstance(value, str) else value
        if stops is not None and (len(stops) > 4 or any(not s for s in stops)):
            raise ValueError("give at most 4 non-empty stop sequences")
        return stops

    def stop_list(self) -> list[str]:
        return list(self.stop or [])

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class ChatCompletionRequest(_GenerationFields):
    messages: list[ChatMessage] = Field(min_length=1)


class CompletionRequest(_GenerationFields):
    prompt: str | list[str] = Field(description="One prompt (a list of exactly one is accepted).")

    @field_validator("prompt")
    @classmethod
    def _single(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("send one prompt per request")
        return value

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]
