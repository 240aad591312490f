"""Settings of the accounts service (env prefix ACCOUNTS_, plus the common fields)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from shared.auth.passwords import DEFAULT_MEMORY_KIB, DEFAULT_TIME_COST
from shared.settings import CommonSettings


class AccountsSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="ACCOUNTS_", extra="ignore", populate_by_name=True)

    jwt_private_key_file: Path = Field(
        description="RSA private key (PEM) that signs access and refresh tokens."
    )
    access_token_ttl_seconds: int = Field(default=900, ge=30)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    password_min_length: int = Field(default=10, ge=8)
    password_max_length: int = Field(default=128, ge=16, le=1024)
    password_hash_concurrency: int = Field(
        default=4, ge=1, description="Password hashes computed at once; the rest queue."
    )
    argon2_memory_kib: int = Field(default=DEFAULT_MEMORY_KIB, ge=1024)
    argon2_time_cost: int = Field(default=DEFAULT_TIME_COST, ge=1)
    max_api_keys_per_user: int = Field(default=50, ge=1)
    api_key_last_used_resolution_seconds: int = Field(
        default=60, ge=1, description="last_used_at is written at most this often per key."
    )
    revocation_sync_seconds: int = Field(
        default=60,
        ge=1,
        le=3600,
        description="How often the worker rewrites the ban and logout keys in Redis from the "
        "database.",
    )

    @field_validator("revocation_sync_seconds")
    @classmethod
    def _clock_aligned(cls, value: int) -> int:
        # The worker runs the sync as an arq cron job, which fires at wall-clock seconds and
        # minutes: only intervals that split a minute or an hour evenly can be expressed.
        if 60 % value == 0 or (value % 60 == 0 and 3600 % value == 0):
            return value
        raise ValueError(
            "must divide a minute evenly (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60) or be "
            "whole minutes that divide an hour (120, 180, 240, 300, 360, 600, 720, 900, 1200, "
            "1800 or 3600)"
        )
