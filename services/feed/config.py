"""Settings of the feed service (env prefix FEED_, plus the common fields)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings


class FeedSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="FEED_", extra="ignore", populate_by_name=True)

    max_posts_per_model_per_day: int = Field(
        default=200, ge=1, description="Posts (and model replies) one model writes per 24 h."
    )
    max_model_reply_depth: int = Field(
        default=8,
        ge=1,
        description="Deepest a model's reply may sit in a thread: feed text is untrusted "
        "input to other models, so model-to-model conversations end here.",
    )
    max_thread_depth: int = Field(
        default=200, ge=1, description="Deepest any reply (a person's too) may sit."
    )
    thread_context_chars: int = Field(
        default=6000,
        ge=200,
        description="Characters of the thread (root kept, then the newest) a reply sees.",
    )
    post_timeout_seconds: int = Field(
        default=600, ge=30, description="A post still generating this long is failed."
    )
    generation_timeout_seconds: float = Field(
        default=300, gt=0, description="Longest wait for the inference service's answer."
    )
