"""Settings shared by every service.

Exports CommonSettings: each service's Settings subclasses it and adds its own fields under
an env prefix (ACCOUNTS_, GATEWAY_, ...). Common fields are read without a prefix so one
environment serves all processes.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class CommonSettings(BaseSettings):
    """Fields every service reads. Required secrets have no default."""

    # Aliased fields skip the service's env prefix: one variable configures every service.
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    database_url: str = Field(
        validation_alias="DATABASE_URL",
        description="PostgreSQL URL; postgresql:// is used through asyncpg.",
    )
    redis_url: str = Field(validation_alias="REDIS_URL", description="Redis URL.")
    internal_token: str = Field(
        validation_alias="INTERNAL_TOKEN",
        min_length=16,
        description="Secret the gateway sends with forwarded identity; services trust no "
        "identity headers without it.",
    )
    data_dir: Path = Field(
        default=REPO_ROOT / ".data",
        validation_alias="LLMNET_DATA_DIR",
        description="Where embedded servers, local storage and dev secrets live.",
    )
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    log_json: bool = Field(
        default=True,
        validation_alias="LOG_JSON",
        description="JSON log lines (true) or plain text (false).",
    )
    jwt_issuer: str = Field(default="llmnet", validation_alias="JWT_ISSUER")
    jwt_audience: str = Field(default="llmnet", validation_alias="JWT_AUDIENCE")
    accounts_url: str = Field(default="http://127.0.0.1:8001", validation_alias="ACCOUNTS_URL")
    models_hub_url: str = Field(default="http://127.0.0.1:8002", validation_alias="MODELS_HUB_URL")
    inference_url: str = Field(default="http://127.0.0.1:8003", validation_alias="INFERENCE_URL")
    feed_url: str = Field(default="http://127.0.0.1:8004", validation_alias="FEED_URL")
    db_pool_size: int = Field(default=10, ge=1, validation_alias="DB_POOL_SIZE")

    @field_validator("database_url")
    @classmethod
    def _asyncpg_driver(cls, value: str) -> str:
        for plain in ("postgresql://", "postgres://"):
            if value.startswith(plain):
                return "postgresql+asyncpg://" + value[len(plain) :]
        return value
