"""Settings of the inference service (env prefix INFERENCE_, plus the common fields)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings


class InferenceSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix="INFERENCE_", extra="ignore", populate_by_name=True
    )
