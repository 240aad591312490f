"""Settings of the model hub (env prefix MODELS_HUB_, plus the common fields).

The upload cap, the outbound allow-list and the provider timeout are common fields
(MAX_UPLOAD_BYTES, OUTBOUND_ALLOW, PROVIDER_TIMEOUT_SECONDS): the gateway and inference read
the same values.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings

GIB = 1024**3
MIB = 1024**2
# S3 refuses multipart parts (but the last) under 5 MiB, and parts over 5 GiB.
MIN_UPLOAD_PART_BYTES = 5 * MIB


class ModelsHubSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix="MODELS_HUB_", extra="ignore", populate_by_name=True
    )

    secret_keys: str = Field(
        description="Comma-separated Fernet keys encrypting provider API keys at rest; the "
        "first encrypts, all decrypt (rotation)."
    )
    max_models_per_user: int = Field(default=50, ge=1)
    max_uploads_per_day: int = Field(default=20, ge=1, description="Versions per user per 24 h.")
    max_extracted_bytes: int = Field(
        default=4 * GIB, ge=1024, description="Bytes an uploaded archive may unpack to."
    )
    max_archive_members: int = Field(default=1000, ge=1)
    # Weights (safetensors, GGUF) compress 1.05-1.5x and tokenizer/config JSON 3-8x, so a real
    # model archive stays far below 20x; zeros deflate about 1000x, so a bomb passes it within
    # its first megabytes.
    max_expansion_ratio: float = Field(
        default=20,
        ge=1,
        description="Most bytes an uploaded archive may unpack to per compressed byte (past "
        "its first 16 MiB).",
    )
    max_json_file_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="Largest config/tokenizer JSON file."
    )
    validation_timeout_seconds: float = Field(default=600, gt=0)
    validation_memory_bytes: int = Field(default=8 * GIB, ge=256 * 1024 * 1024)
    validation_cpu_seconds: int = Field(default=1800, ge=1)
    validation_threads: int = Field(default=2, ge=1)
    validation_max_attempts: int = Field(default=3, ge=1)
    stale_upload_seconds: int = Field(
        default=6 * 3600, ge=60, description="An upload unfinished this long is failed."
    )

    # -- resumable uploads (upload sessions) -------------------------------------------------
    # Each part costs the services ~9 ms of CPU besides its bytes (its request, its two
    # statements, its storage calls): at 16 MiB that was ~15% of a part's cost on the 2-CPU
    # test machine, at 64 MiB ~4%. A dropped connection re-sends at most the parts in flight.
    upload_part_bytes: int = Field(
        default=64 * MIB,
        ge=MIN_UPLOAD_PART_BYTES,
        le=5 * GIB,
        description="Part size of an upload session that does not choose one.",
    )
    upload_max_part_bytes: int = Field(
        default=256 * MIB,
        ge=MIN_UPLOAD_PART_BYTES,
        le=5 * GIB,
        description="Largest part size an upload session may choose (each part PUT's body).",
    )
    upload_session_seconds: int = Field(
        default=24 * 3600,
        ge=60,
        description="How long an upload session stays open; past it the sweeper removes its parts.",
    )

    # -- fine-tuning (MODELS_HUB_FINETUNE_*) ----------------------------------------------
    finetune_max_file_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=1024,
        description="Largest training (or validation) JSONL file; 413 past it.",
    )
    finetune_max_examples: int = Field(default=100_000, ge=1)
    finetune_max_epochs: int = Field(default=100, ge=1)
    finetune_max_batch_size: int = Field(default=64, ge=1)
    finetune_max_seq_length: int = Field(
        default=4096, ge=16, description="Largest max_seq_length a fine-tune may ask for."
    )
    finetune_min_learning_rate: float = Field(default=1e-7, gt=0)
    finetune_max_learning_rate: float = Field(default=1e-1, gt=0)
    finetune_max_steps: int = Field(
        default=100_000, ge=1, description="Most optimizer steps one fine-tune may run."
    )
    finetune_max_concurrent_per_user: int = Field(
        default=2, ge=1, description="A user's fine-tunes queued or running at once."
    )
    finetune_timeout_seconds: float = Field(
        default=6 * 3600, gt=0, description="Wall-clock limit of one training run."
    )
    finetune_memory_bytes: int = Field(
        default=16 * GIB,
        ge=256 * 1024 * 1024,
        description="Resident memory the training process may use (it is stopped past it).",
    )
    finetune_device: str = Field(
        default="cpu", description="Where training runs: cpu, or cuda:N on the GPU node."
    )
    finetune_threads: int = Field(default=4, ge=1, description="CPU threads of a training run.")
    finetune_heartbeat_seconds: float = Field(
        default=5, gt=0, description="How often a running fine-tune reports it is alive."
    )
    finetune_lease_seconds: float = Field(
        default=60,
        gt=0,
        description="A running fine-tune silent this long is failed by the sweeper (its "
        "worker died).",
    )
    finetune_progress_interval_seconds: float = Field(
        default=1.0, ge=0, description="Least time between two recorded progress reports."
    )
    finetune_events_ttl_seconds: int = Field(
        default=7 * 24 * 3600, ge=60, description="How long a fine-tune's event stream is kept."
    )
