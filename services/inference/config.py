"""Settings of the inference service (env prefix INFERENCE_, plus the common fields).

Proxied provider calls use the common OUTBOUND_ALLOW and PROVIDER_TIMEOUT_SECONDS.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.inference.engine.params import EngineOptions
from shared.settings import CommonSettings

GIB = 1024**3


class InferenceSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix="INFERENCE_", extra="ignore", populate_by_name=True
    )

    device: str = Field(default="cpu", description="cpu, cuda or cuda:N.")
    dtype: str | None = Field(
        default=None,
        description="float32, bfloat16 or float16 pins the dtype; unset: measured at load "
        "(INFERENCE_TUNE_SECONDS > 0: bf16 where the device runs it fast and the model's greedy "
        "output agrees with fp32), else fp32 on CPU, bf16 on GPU.",
    )
    cpu_threads: int | None = Field(
        default=None,
        ge=1,
        description="Pins the intra-op threads of each model's engine on CPU; unset: measured at "
        "load (INFERENCE_TUNE_SECONDS > 0), else one less than the usable CPUs.",
    )
    cpu_packing: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="oneDNN packing of fp32 and bf16 linear layers on CPU: on/off pins it; auto: "
        "measured at load (INFERENCE_TUNE_SECONDS > 0), else fp32 packed from 512x512 weights "
        "on.",
    )
    cpu_quantization: Literal["auto", "on", "off"] = Field(
        default="off",
        description="int8 linear weights on CPU (torch dynamic quantization, fp32 models): on "
        "pins it; auto: one more candidate measured at load, kept only if its greedy output "
        "agrees with fp32 and it is fastest; off: never.",
    )
    tune_seconds: float = Field(
        default=4.0,
        ge=0,
        le=120,
        description="Time box of the measurement that chooses each model's dtype, packing and "
        "threads at load (in the loading thread, never the event loop); 0: no measurement.",
    )
    memory_budget_bytes: int = Field(
        default=8 * GIB, ge=1, description="Weights kept loaded; least recently used evicted."
    )
    max_batch_size: int = Field(default=32, ge=1, description="Requests decoded together.")
    max_waiting: int = Field(
        default=64, ge=0, description="Requests queued per model beyond the batch (429 past it)."
    )
    prefill_chunk_tokens: int = Field(
        default=512,
        ge=0,
        description="A prompt longer than this, arriving while others decode, is prefilled in "
        "chunks of at most this many tokens between decoding steps, each sized by measurement "
        "so its pass takes 80% of a decoding step, so running streams keep within twice their "
        "pace (0: whole prompts).",
    )
    admission_hold_ms: int = Field(
        default=300,
        ge=0,
        le=10_000,
        description="While more requests are on their way to the engine (being checked and "
        "prepared), a waiting one is held up to this long (and never longer than its prefill "
        "pass is measured to take) so they are prefilled together (0: never held).",
    )
    prefix_cache_mb: int = Field(
        default=256,
        ge=0,
        description="Memory per loaded model for the keys/values of recent prompts, so a "
        "conversation's next turn prefills only what is new (0: no prefix cache).",
    )
    max_concurrent_per_user: int = Field(
        default=8, ge=1, description="Generations one user may have running at once."
    )
    default_max_tokens: int = Field(default=256, ge=1)
    max_tokens_limit: int = Field(default=4096, ge=1, description="Largest max_tokens accepted.")
    daily_token_quota: int = Field(
        default=0, ge=0, description="Tokens per user per day (0: unlimited); admins may override."
    )
    cache_dir_name: str = Field(default="model-cache", description="Under LLMNET_DATA_DIR.")
    # -- conversation extras: attachments, prompt templates ------------------------------------
    attachment_max_bytes: int = Field(
        default=30 * 1024 * 1024, ge=1, description="Largest attachment file (413 past it)."
    )
    attachment_max_tokens: int = Field(
        default=8000,
        ge=1,
        description="Tokens of an attachment's text kept as context; longer text is cut there "
        "(and the response says so).",
    )
    attachments_per_conversation: int = Field(
        default=20, ge=1, description="Attachments one conversation may hold."
    )
    prompt_template_max_chars: int = Field(
        default=20_000, ge=1, description="Longest prompt template body."
    )
    prompt_variable_max_chars: int = Field(
        default=50_000, ge=1, description="Longest value of one template variable."
    )
    prompt_rendered_max_chars: int = Field(
        default=200_000, ge=1, description="Longest prompt a template may render to."
    )
    prompt_template_max_variables: int = Field(
        default=30, ge=1, description="Variables one prompt template may declare."
    )
    prompt_templates_per_user: int = Field(
        default=200, ge=1, description="Prompt templates one user may save."
    )
    message_stream_ttl_seconds: int = Field(
        default=3600,
        ge=10,
        description="How long an answer's events stay buffered in Redis for re-attaching clients.",
    )
    message_heartbeat_seconds: int = Field(
        default=15,
        ge=2,
        description="Lease of the process generating an answer, renewed every third of it; the "
        "sweeper fails answers whose lease expired.",
    )
    message_persist_seconds: float = Field(
        default=2.0, gt=0, description="How often a streaming answer's partial text is saved."
    )
    conversation_undo_seconds: int = Field(
        default=600,
        ge=0,
        description="How long a deleted conversation can be restored before the purge job "
        "removes it and its attachments.",
    )
    # -- evaluation reports and the prompt lab -------------------------------------------------
    evaluation_max_prompts: int = Field(
        default=60,
        ge=1,
        description="Prompts (a pair counts as two) one evaluation may run, all sets together.",
    )
    evaluation_max_repeats: int = Field(
        default=5, ge=2, description="Most samples per consistency prompt (`repeats`)."
    )
    evaluation_max_tokens: int = Field(
        default=256, ge=1, description="Largest `max_tokens` of an evaluation's samples."
    )
    evaluation_heldout_max_chars: int = Field(
        default=200_000, ge=1, description="Longest held-out text for perplexity."
    )
    evaluation_perplexity_window: int = Field(
        default=512,
        ge=8,
        description="Tokens scored per forward pass of the perplexity computation (the model's "
        "context caps it).",
    )
    evaluation_concurrency: int = Field(
        default=4,
        ge=1,
        description="Samples an evaluation or A/B job requests at once (each takes one of the "
        "owner's generation slots).",
    )
    evaluations_active_per_user: int = Field(
        default=3, ge=1, description="Queued or running evaluations one user may have (429 past)."
    )
    evaluation_job_timeout_seconds: int = Field(
        default=3600, ge=60, description="Longest an evaluation or A/B job may run."
    )
    evaluation_events_ttl_seconds: int = Field(
        default=86_400, ge=60, description="How long progress events stay resumable."
    )
    prompt_lab_max_chars: int = Field(
        default=4000, ge=1, description="Longest prompt the prompt lab analyzes or tests."
    )
    prompt_lab_max_samples: int = Field(
        default=10, ge=1, description="Most samples per model and arm of an A/B run."
    )
    prompt_lab_max_models: int = Field(
        default=3, ge=1, description="Most models one A/B run compares on."
    )

    def engine_options(self) -> EngineOptions:
        """What every engine this service loads runs with."""
        return EngineOptions(
            max_batch_size=self.max_batch_size,
            max_waiting=self.max_waiting,
            prefill_chunk_tokens=self.prefill_chunk_tokens,
            prefix_cache_bytes=self.prefix_cache_mb * 1024 * 1024,
            admission_hold_s=self.admission_hold_ms / 1000,
            cpu_threads=self.cpu_threads,
            cpu_onednn=self.cpu_packing,
            cpu_quantization=self.cpu_quantization,
            tune_seconds=self.tune_seconds,
        )
