"""Settings of the gateway (env prefix GATEWAY_, plus the common fields).

A model upload's body limit is the common MAX_UPLOAD_BYTES plus multipart framing
(`max_upload_body_bytes`), so it always agrees with the model hub's cap.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from shared.settings import CommonSettings


class GatewaySettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", populate_by_name=True)

    rate_limit_per_minute: int = Field(
        default=600, ge=1, description="Requests per minute per user or API key."
    )
    anon_rate_limit_per_minute: int = Field(
        default=120, ge=1, description="Requests per minute per IP address without credentials."
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted (413 past it).",
    )
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    upstream_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Longest wait for an upstream's next bytes (streams send heartbeats).",
    )
    max_upstream_connections: int = Field(default=256, ge=1)
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["*"],
        description="Comma-separated origins allowed by CORS; empty disables CORS.",
    )
    trust_forwarded_for: bool = Field(
        default=False,
        description="Take the client address from X-Forwarded-For (behind a trusted proxy).",
    )
    api_key_cache_seconds: int = Field(default=60, ge=1)
    openapi_cache_seconds: int = Field(default=60, ge=0)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value
