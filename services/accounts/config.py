"""Settings of the accounts service (env prefix ACCOUNTS_, plus the common fields)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from shared.auth.passwords import DEFAULT_MEMORY_KIB, DEFAULT_TIME_COST
from shared.settings import CommonSettings


class SmtpSecurity(StrEnum):
    """How the SMTP connection is protected: STARTTLS after connecting, TLS from the first
    byte (SMTPS, usually port 465), or none (a relay on loopback only)."""

    STARTTLS = "starttls"
    TLS = "tls"
    NONE = "none"


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

    # Mail (verification and password reset). SMTP_* skip the ACCOUNTS_ prefix: they name the
    # platform's one mail relay. No SMTP_HOST: mails are written as .eml files instead.
    smtp_host: str = Field(
        default="",
        validation_alias="SMTP_HOST",
        description="SMTP server; empty writes each mail as a .eml file under "
        "LLMNET_DATA_DIR/mail and logs its link (the embedded default).",
    )
    smtp_port: int = Field(default=587, ge=1, le=65535, validation_alias="SMTP_PORT")
    smtp_username: str = Field(default="", validation_alias="SMTP_USERNAME")
    smtp_password: SecretStr = Field(default=SecretStr(""), validation_alias="SMTP_PASSWORD")
    smtp_security: SmtpSecurity = Field(
        default=SmtpSecurity.STARTTLS,
        validation_alias="SMTP_SECURITY",
        description="starttls, tls (SMTPS) or none.",
    )
    smtp_from: str = Field(
        default="llmnet <no-reply@localhost>",
        validation_alias="SMTP_FROM",
        description="The From header of the platform's mails.",
    )
    smtp_timeout_seconds: float = Field(
        default=15, gt=0, le=300, validation_alias="SMTP_TIMEOUT_SECONDS"
    )
    public_base_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("http://127.0.0.1:8000"),
        validation_alias="PUBLIC_BASE_URL",
        description="Where people reach the platform (the gateway): the links in mails start "
        "with it.",
    )
    mail_dir: Path | None = Field(
        default=None,
        description="Folder for .eml files when SMTP_HOST is empty (LLMNET_DATA_DIR/mail).",
    )
    email_verification_ttl_seconds: int = Field(default=48 * 3600, ge=300)
    password_reset_ttl_seconds: int = Field(default=3600, ge=300)
    # Unprefixed: the services that refuse unverified users their actions must agree on it.
    require_verified_email: bool = Field(
        default=False,
        validation_alias="REQUIRE_VERIFIED_EMAIL",
        description="Refuse unverified accounts (403 email_not_verified) the actions the "
        "README lists, until a mailed link verifies their email.",
    )
    recovery_mails_per_hour: int = Field(
        default=5,
        ge=1,
        description="Verification or reset mails one address (or account) may ask for per "
        "hour (429 past it).",
    )
    recovery_requests_per_ip_per_hour: int = Field(
        default=30,
        ge=1,
        description="Forgot-password and reset requests one IP may make per hour (429 past it).",
    )

    @property
    def mail_folder(self) -> Path:
        return self.mail_dir or self.data_dir / "mail"

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
