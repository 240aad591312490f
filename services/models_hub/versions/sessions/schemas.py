"""Upload sessions as clients see them."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from services.models_hub.config import MIN_UPLOAD_PART_BYTES
from services.models_hub.models import UploadSessionStatus

MAX_SESSION_FILES = 1000
# A plain file name (versions/upload.py, plain_name): letters, digits, '.', '_' and '-',
# starting with a letter or digit.
PLAIN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$"


class UploadFileCreate(BaseModel):
    name: str = Field(
        min_length=1,
        max_length=255,
        pattern=PLAIN_NAME_PATTERN,
        description="The file's name, as in a one-request upload: a plain name (config.json, "
        "model.safetensors, model.Q4_K_M.gguf, model.tar.gz), no folders.",
    )
    size: int = Field(ge=1, description="The file's size in bytes.")
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="Optional SHA-256 (hex) of the whole file, verified at completion.",
    )


class UploadSessionCreate(BaseModel):
    files: list[UploadFileCreate] = Field(min_length=1, max_length=MAX_SESSION_FILES)
    part_size: int | None = Field(
        default=None,
        ge=MIN_UPLOAD_PART_BYTES,
        description="Bytes per part (every part but a file's last is exactly this long); "
        "default MODELS_HUB_UPLOAD_PART_BYTES, at least 5 MiB, at most "
        "MODELS_HUB_UPLOAD_MAX_PART_BYTES.",
    )


class UploadFileRead(BaseModel):
    name: str
    size: int
    sha256: str | None
    part_count: int
    received_offsets: list[int] = Field(description="Offsets of the parts received, sorted.")
    missing_offsets: list[int] = Field(description="Offsets of the parts still to send, sorted.")


class UploadSessionRead(BaseModel):
    id: uuid.UUID
    model_id: uuid.UUID
    status: UploadSessionStatus = Field(description="open, completed, aborted or expired.")
    part_size: int
    created_at: datetime
    expires_at: datetime
    version_id: uuid.UUID | None = Field(description="The version made by completing it.")
    files: list[UploadFileRead]
    received_bytes: int
    total_bytes: int


class UploadPartRead(BaseModel):
    name: str
    offset: int
    length: int
    crc32c: str = Field(
        description="CRC32C (Castagnoli; 8 hex digits) of this part's bytes, for the "
        "client to check that the part arrived intact."
    )
