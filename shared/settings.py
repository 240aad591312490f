"""Settings shared by every service.

Exports CommonSettings: each service's Settings subclasses it and adds its own fields under
an env prefix (ACCOUNTS_, GATEWAY_, ...). Common fields are read without a prefix so one
environment serves all processes; a value two services must agree on (the upload cap, the
outbound allow-list, the provider timeout) is one common field, never two kept equal by hand.
Also exports UPLOAD_FRAMING_BYTES and REPO_ROOT.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.auth.service_credentials import ServiceName, parse_service_callers

REPO_ROOT = Path(__file__).resolve().parent.parent
GIB = 1024**3
# Room for the multipart framing (boundaries, part headers, form fields) around an upload's
# files: the gateway admits an upload body this much larger than MAX_UPLOAD_BYTES, and the
# model hub, which parses the form, enforces the exact cap on the files themselves.
UPLOAD_FRAMING_BYTES = 16 * 1024**2


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
        "identity headers without it. Internal endpoints never accept it.",
    )
    service_token: str = Field(
        validation_alias="SERVICE_TOKEN",
        min_length=16,
        description="This process's own credential for other services' internal endpoints; "
        "each service (and its worker) has a different one.",
    )
    service_callers: Annotated[dict[ServiceName, str], NoDecode] = Field(
        default_factory=dict,
        validation_alias="SERVICE_CALLERS",
        description="'name:sha256,...': the SHA-256 of each service's SERVICE_TOKEN; internal "
        "endpoints answer only the callers listed here (and named by the endpoint).",
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
    db_pool_size: int = Field(default=20, ge=1, validation_alias="DB_POOL_SIZE")
    storage_backend: Literal["local", "s3"] = Field(
        default="local",
        validation_alias="STORAGE_BACKEND",
        description="Where model files live: local (under LLMNET_DATA_DIR/storage) or s3.",
    )
    s3_endpoint: str = Field(
        default="127.0.0.1:9000",
        validation_alias="S3_ENDPOINT",
        description="host:port of the S3/MinIO server.",
    )
    s3_access_key: str = Field(default="", validation_alias="S3_ACCESS_KEY")
    s3_secret_key: str = Field(default="", validation_alias="S3_SECRET_KEY")
    s3_bucket: str = Field(default="llmnet", validation_alias="S3_BUCKET")
    s3_secure: bool = Field(default=False, validation_alias="S3_SECURE", description="Use TLS.")
    s3_region: str | None = Field(default=None, validation_alias="S3_REGION")
    max_upload_bytes: int = Field(
        default=2 * GIB,
        ge=1024,
        validation_alias="MAX_UPLOAD_BYTES",
        description="One model upload, all files together (413 past it, nothing kept); the "
        "gateway admits its body with UPLOAD_FRAMING_BYTES more for the multipart framing.",
    )
    outbound_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias="OUTBOUND_ALLOW",
        description="Comma-separated hosts, host:port, IPs or CIDRs that provider URLs may "
        "reach although private or loopback (registration, connection tests, proxied calls).",
    )
    shutdown_drain_seconds: float = Field(
        default=0,
        ge=0,
        le=300,
        validation_alias="SHUTDOWN_DRAIN_SECONDS",
        description="After SIGTERM, how long a service keeps accepting requests while /readyz "
        "already answers 503, so load balancers stop sending before it stops listening.",
    )
    shutdown_grace_seconds: float = Field(
        default=20,
        ge=0,
        le=3600,
        validation_alias="SHUTDOWN_GRACE_SECONDS",
        description="After SIGTERM (and the drain), how long running requests, streams and "
        "worker jobs may go on; streams still open then end with an `error` event "
        "(`shutting_down`), unfinished jobs are cancelled and re-queued.",
    )
    provider_timeout_seconds: float = Field(
        default=120,
        gt=0,
        validation_alias="PROVIDER_TIMEOUT_SECONDS",
        description="Longest wait for an external provider's next bytes (connection tests "
        "and proxied completions).",
    )

    @property
    def max_upload_body_bytes(self) -> int:
        """The largest request body of a model upload: its files plus multipart framing."""
        return self.max_upload_bytes + UPLOAD_FRAMING_BYTES

    @field_validator("outbound_allow", mode="before")
    @classmethod
    def _split_outbound_allow(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("service_callers", mode="before")
    @classmethod
    def _parse_callers(cls, value: object) -> object:
        return parse_service_callers(value) if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _asyncpg_driver(cls, value: str) -> str:
        for plain in ("postgresql://", "postgres://"):
            if value.startswith(plain):
                return "postgresql+asyncpg://" + value[len(plain) :]
        return value
