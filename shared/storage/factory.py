"""Choosing the storage backend from settings.

Exports create_storage: LocalStorage under `data_dir/storage` when STORAGE_BACKEND=local (the
embedded default), S3Storage from the S3_* settings when STORAGE_BACKEND=s3.
"""

from __future__ import annotations

from typing import assert_never

from shared.settings import CommonSettings
from shared.storage.base import Storage
from shared.storage.local import LocalStorage
from shared.storage.s3 import S3Storage


def create_storage(settings: CommonSettings) -> Storage:
    """The backend the settings name; neither creates its directory or bucket until used."""
    backend = settings.storage_backend
    if backend == "local":
        return LocalStorage(settings.data_dir / "storage")
    if backend == "s3":
        return S3Storage(
            settings.s3_endpoint,
            settings.s3_access_key,
            settings.s3_secret_key,
            settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
        )
    assert_never(backend)
