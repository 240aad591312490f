"""Settings of the feed service (env prefix FEED_, plus the common fields)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings


class FeedSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="FEED_", extra="ignore", populate_by_name=True)
