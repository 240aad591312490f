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
    # Follows, timelines, trending, live stream, schedules (issue 10, part A).
    home_timeline_cap: int = Field(
        default=800,
        ge=20,
        description="Newest posts kept per person's home timeline in Redis; older pages are "
        "read from the database.",
    )
    home_timeline_ttl_seconds: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="A home timeline nobody read for this long is evicted from Redis (rebuilt "
        "from the database on the next read).",
    )
    fanout_batch_size: int = Field(
        default=1000, ge=1, description="Followers one fan-out job writes a new post to."
    )
    trending_window_hours: int = Field(
        default=24, ge=1, le=168, description="Likes and replies older than this do not count."
    )
    trending_half_life_hours: float = Field(
        default=6, gt=0, description="An hour-old like counts half as much after this long."
    )
    trending_cache_seconds: float = Field(
        default=10, ge=0, description="How long one computed trending ranking is served."
    )
    visibility_cache_seconds: float = Field(
        default=5,
        ge=0,
        description="How long a listing remembers that a model is public (private models are "
        "asked about per viewer).",
    )
    stream_heartbeat_seconds: float = Field(
        default=15, gt=0, description="Idle seconds before the live feed sends a heartbeat."
    )
    stream_lifetime_seconds: float = Field(
        default=3600, gt=0, description="A live feed connection ends after this; clients resume."
    )
    schedule_min_interval_minutes: int = Field(
        default=10, ge=1, description="Shortest interval an owner may give a posting schedule."
    )
    # Notifications and recommendations (issue 10, part B).
    notification_stream_length: int = Field(
        default=1000,
        ge=10,
        description="Newest notifications kept per person for the live stream (older ones "
        "are listed by GET /api/v1/notifications).",
    )
    recommendations_interval_minutes: int = Field(
        default=10, ge=1, le=60, description="How often the worker recomputes recommendations."
    )
    recommendations_per_list: int = Field(
        default=20, ge=1, le=100, description="Items kept per recommendation list."
    )
    recommendations_popularity_weight: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Share of popularity in a recommendation's score (the rest is "
        "collaborative filtering: people who liked what you liked).",
    )
