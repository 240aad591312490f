"""Settings of the inference service (env prefix INFERENCE_, plus the common fields).

Proxied provider calls use the common OUTBOUND_ALLOW and PROVIDER_TIMEOUT_SECONDS.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings

GIB = 1024**3


class InferenceSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix="INFERENCE_", extra="ignore", populate_by_name=True
    )

    device: str = Field(default="cpu", description="cpu, cuda or cuda:N.")
    dtype: str | None = Field(
        default=None, description="float32, bfloat16 or float16; default fp32 on CPU, bf16 on GPU."
    )
    memory_budget_bytes: int = Field(
        default=8 * GIB, ge=1, description="Weights kept loaded; least recently used evicted."
    )
    max_batch_size: int = Field(default=32, ge=1, description="Requests decoded together.")
    max_waiting: int = Field(
        default=64, ge=0, description="Requests queued per model beyond the batch (429 past it)."
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
