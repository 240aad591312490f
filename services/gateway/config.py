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
    max_upstream_connections: int = Field(
        default=256, ge=1, description="Pooled connections per upstream (per inference replica)."
    )
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
    # Inference replicas (services/gateway/replicas.py).
    inference_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated base URLs of the inference replicas; empty: INFERENCE_URL "
        "alone.",
    )
    inference_headless_url: str | None = Field(
        default=None,
        description="URL of a Kubernetes headless Service of the inference replicas (e.g. "
        "http://inference-replicas:8003): each A record of its name is a replica at its port. "
        "Set, it replaces GATEWAY_INFERENCE_URLS.",
    )
    inference_resolve_seconds: float = Field(
        default=10, gt=0, description="How often the headless Service's name is resolved again."
    )
    inference_health_seconds: float = Field(
        default=2,
        gt=0,
        description="How often each inference replica's /readyz is asked; a replica that fails "
        "it gets requests only when no live one answers.",
    )
    inference_replicas_per_model: int = Field(
        default=1, ge=1, description="Inference replicas that share each model's requests."
    )
    inference_model_replicas: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=dict,
        description="'owner/slug=3,...': more (or fewer) replicas for the models named.",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("inference_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [url.strip() for url in value.split(",") if url.strip()]
        return value

    @field_validator("inference_model_replicas", mode="before")
    @classmethod
    def _parse_model_replicas(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        parsed: dict[str, str] = {}
        for item in value.split(","):
            if not item.strip():
                continue
            model, sep, count = item.partition("=")
            if not sep or not model.strip():
                raise ValueError(f"expected 'owner/slug=N', got {item.strip()!r}")
            parsed[model.strip().lower()] = count.strip()
        return parsed

    @field_validator("inference_model_replicas")
    @classmethod
    def _check_model_replicas(cls, value: dict[str, int]) -> dict[str, int]:
        for model, count in value.items():
            if count < 1:
                raise ValueError(f"{model}: a model needs at least 1 replica, not {count}")
        return {model.lower(): count for model, count in value.items()}
