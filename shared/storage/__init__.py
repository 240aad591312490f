"""Object storage behind one interface.

Exports: Storage (the protocol services code against), StoredObject, InvalidKey,
LocalStorage (filesystem; the embedded default). Objects are written from async chunk
iterators and read back as async chunk iterators, so no caller holds a whole file in memory.
"""

from shared.storage.base import InvalidKey, Storage, StoredObject, validate_key
from shared.storage.local import LocalStorage

__all__ = ["InvalidKey", "LocalStorage", "Storage", "StoredObject", "validate_key"]
