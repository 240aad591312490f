"""Object storage behind one interface.

Exports: Storage (the protocol services code against), StoredObject, StoredPart and
AssembledObject (objects assembled from parts), InvalidKey, PartSizeMismatch, LocalStorage
(filesystem; the embedded default). Objects are written from async chunk iterators and read
back as async chunk iterators, so no caller holds a whole file in memory.
"""

from shared.storage.base import (
    AssembledObject,
    InvalidKey,
    PartSizeMismatch,
    Storage,
    StoredObject,
    StoredPart,
    validate_key,
)
from shared.storage.local import LocalStorage

__all__ = [
    "AssembledObject",
    "InvalidKey",
    "LocalStorage",
    "PartSizeMismatch",
    "Storage",
    "StoredObject",
    "StoredPart",
    "validate_key",
]
