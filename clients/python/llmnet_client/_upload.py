"""What an upload sends: the local files (a folder's, an archive, a GGUF), their SHA-256s,
and the parts an upload session still misses."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google_crc32c

from llmnet_client.errors import PartCorrupted

ProgressCallback = Callable[[int, int], None]
"""Called with (bytes done, total bytes) as parts are confirmed."""

_HASH_CHUNK = 4 * 1024 * 1024
OPEN = "open"
SEND_TRIES = 3
"""How often a part whose CRC32C comes back wrong is sent before the upload gives up."""


def arrived_intact(answer: Any, data: bytes) -> bool:
    """Whether the server's CRC32C of a part matches the bytes that were sent."""
    return bool(answer.get("crc32c") == google_crc32c.Checksum(data).hexdigest().decode())


def corrupted(part: Part) -> PartCorrupted:
    return PartCorrupted(
        f"the part of {part.file.name} at offset {part.offset} arrived altered "
        f"{SEND_TRIES} times; check the network, then run the upload again to resume"
    )


@dataclass(frozen=True)
class LocalFile:
    name: str
    path: Path
    size: int
    sha256: str

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class Part:
    file: LocalFile
    offset: int
    length: int

    def read(self) -> bytes:
        with self.file.path.open("rb") as handle:
            handle.seek(self.offset)
            return handle.read(self.length)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def local_files(path: str | Path) -> list[LocalFile]:
    """A folder's regular files (hidden and empty ones left out: a session stores bytes), or
    the one file named."""
    source = Path(path).expanduser()
    if source.is_dir():
        paths = sorted(
            p
            for p in source.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.stat().st_size > 0
        )
        if not paths:
            raise ValueError(f"{source} holds no files to upload")
    elif source.is_file():
        paths = [source]
    else:
        raise FileNotFoundError(f"{source} is neither a file nor a folder")
    return [LocalFile(p.name, p, p.stat().st_size, sha256_of(p)) for p in paths]


def same_files(session: dict[str, Any], files: list[LocalFile]) -> bool:
    """Whether a session was made for exactly these files (names, sizes, checksums)."""
    remote = {f["name"]: (f["size"], f.get("sha256")) for f in session.get("files", [])}
    local = {f.name: (f.size, f.sha256) for f in files}
    return remote.keys() == local.keys() and all(
        remote[name][0] == size and remote[name][1] in (None, digest)
        for name, (size, digest) in local.items()
    )


def resumable(session: dict[str, Any], files: list[LocalFile]) -> bool:
    return session.get("status") == OPEN and same_files(session, files)


def finished_version(session: dict[str, Any], files: list[LocalFile]) -> str | None:
    """The version a completed session of these files made (its upload needs no redo)."""
    if session.get("status") == "completed" and session.get("version_id"):
        return str(session["version_id"]) if same_files(session, files) else None
    return None


def missing_parts(session: dict[str, Any], files: list[LocalFile]) -> list[Part]:
    """The parts the session has not received, in file order."""
    part_size = int(session["part_size"])
    by_name = {f.name: f for f in files}
    parts: list[Part] = []
    for remote in session["files"]:
        local = by_name[remote["name"]]
        for offset in remote.get("missing_offsets", []):
            parts.append(Part(local, offset, max(0, min(part_size, local.size - offset))))
    return parts


def received_bytes(session: dict[str, Any]) -> int:
    return int(session.get("received_bytes") or 0)
