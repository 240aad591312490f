"""OpenAI-compatible request bodies (the subset we serve, with clear refusals for the rest)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    field_validator,
)

from shared.fields import INT32_MAX, JSON_INT_MAX, JSON_INTEGER, Text

StopSequence = Annotated[Text, Field(min_length=1)]
TokenCount = Annotated[int, Field(ge=1, le=INT32_MAX), JSON_INTEGER]


class TextPart(BaseModel):
    type: Literal["text"]
    text: Text


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: Text | list[TextPart] = Field(description="Text, or a list of text parts.")
    name: Text | None = Field(default=None, max_length=256)

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    include_usage: StrictBool = False


class _GenerationFields(BaseModel):
    # Unknown OpenAI fields (logit_bias, tools, ...) are refused by name rather than ignored.
    model_config = ConfigDict(extra="forbid")

    model: Text = Field(min_length=3, max_length=100, description="`<owner>/<slug>`.")
    # The upper bound is the INFERENCE_MAX_TOKENS_LIMIT setting: the service checks it, and the
    # inference app writes it into its document (document_bounds).
    max_tokens: TokenCount | None = None
    max_completion_tokens: TokenCount | None = None
    temperature: StrictFloat | None = Field(default=None, ge=0, le=2)
    top_p: StrictFloat | None = Field(default=None, gt=0, le=1)
    top_k: Annotated[int, Field(ge=0, le=INT32_MAX), JSON_INTEGER] | None = Field(
        default=None, description="Extension: 0 disables."
    )
    repetition_penalty: StrictFloat | None = Field(
        default=None, gt=0, le=10, description="Extension."
    )
    stop: StopSequence | Annotated[list[StopSequence], Field(max_length=4)] | None = Field(
        default=None, description="Up to 4 non-empty sequences that end the output."
    )
    seed: Annotated[int, Field(ge=0, le=JSON_INT_MAX), JSON_INTEGER] | None = None
    n: Annotated[int, Field(ge=1, le=1), JSON_INTEGER] = Field(
        default=1, description="Only one choice per request."
    )
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    frequency_penalty: StrictFloat = Field(default=0, ge=0, le=0, description="Not supported: 0.")
    presence_penalty: StrictFloat = Field(default=0, ge=0, le=0, description="Not supported: 0.")
    user: Text | None = Field(default=None, max_length=256)

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> list[str] | None:
        return [value] if isinstance(value, str) else value

    def stop_list(self) -> list[str]:
        return list(self.stop or [])

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class ChatCompletionRequest(_GenerationFields):
    messages: list[ChatMessage] = Field(min_length=1)


class CompletionRequest(_GenerationFields):
    prompt: Text | Annotated[list[Text], Field(min_length=1, max_length=1)] = Field(
        description="One prompt (a list of exactly one is accepted)."
    )

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


# ---- what the endpoints answer ------------------------------------------------------------------
# Field order and presence are the wire format OpenAI clients parse: `logprobs` and a null
# `finish_reason` are always sent; a delta carries only what it has.


def _absent(value: object) -> bool:
    return value is None


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatCompletionChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str = Field(description="`stop`, `length`, or what a remote provider said.")
    logprobs: None = None


class ChatCompletion(BaseModel):
    """A whole chat completion (`stream` false)."""

    id: str = Field(description="`chatcmpl-...`.")
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(description="Unix time.")
    model: str
    choices: list[ChatCompletionChoice]
    usage: CompletionUsage


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = Field(default=None, exclude_if=_absent)
    content: str | None = Field(default=None, exclude_if=_absent)


class ChatChunkChoice(BaseModel):
    index: int = 0
    delta: ChatDelta
    finish_reason: str | None = Field(description="Set in the last chunk with choices.")
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One event of a streamed chat completion: the role first, then text deltas, then the
    finish reason; with `stream_options.include_usage`, a last chunk with no choices and the
    usage."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: CompletionUsage | None = Field(default=None, exclude_if=_absent)


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: str | None = Field(description="Always set in a whole completion.")
    logprobs: None = None


class TextCompletion(BaseModel):
    """A text completion; streamed, each event is one too (with text deltas, and the finish
    reason in the last choice), and the usage chunk has no choices."""

    id: str = Field(description="`cmpl-...`.")
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: CompletionUsage | None = Field(default=None, exclude_if=_absent)


class ModelCard(BaseModel):
    id: str = Field(description="`<owner>/<slug>`.")
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
