"""Settings of the models_hub service (env prefix MODELS_HUB_, plus the common fields)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings


class ModelsHubSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix="MODELS_HUB_", extra="ignore", populate_by_name=True
    )
