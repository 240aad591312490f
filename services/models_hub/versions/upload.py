"""Receiving a version's files: streamed to storage, recognised by content, checked, capped.

A version arrives as separate files in one multipart request, as one .gguf, or as one
archive (.tar, .tar.gz, .zip) of a model folder. Archives are spooled to a temporary file
(zip needs random access) and read member by member by this code, never `extractall`: only
regular files with clean relative names are taken, links and devices are refused, and both
the member count and the bytes actually unpacked are capped.

Archives are also held to an expansion ratio (`max_expansion_ratio`), so that a few megabytes
cannot buy gigabytes of decompression: first against the sizes the archive declares (a zip's
central directory before anything is unpacked, each tar header before its data is read), then
against the bytes actually unpacked per compressed byte read so far (which also covers what
tarfile reads on its own: skipped members, long-name and pax headers).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import re
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import anyio

from services.models_hub.versions.formats import (
    ARCHIVES,
    SNIFF_BYTES,
    FileKind,
    FileRefused,
    classify,
    policy_refusals,
)
from shared.errors import PayloadTooLarge, UnprocessableEntity
from shared.model_files import (
    ModelFormat,
    SafetensorsCheck,
    check_gguf_head,
    check_json,
    model_format,
)
from shared.storage import Storage

CHUNK = 1 << 20
# The first 16 MiB of an archive unpack without the ratio check: tar pads each small file to
# 512-byte blocks and the whole to 10 KiB records, and small JSON files compress 10x and more,
# so a tiny genuine model can pass any ratio, while 16 MiB costs nothing to unpack.
RATIO_GRACE_BYTES = 16 << 20
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


class ArchiveRefused(UnprocessableEntity):
    code = "archive_refused"


class ArchiveExpansionRefused(ArchiveRefused):
    code = "archive_expansion_refused"


class ChecksumMismatch(UnprocessableEntity):
    code = "checksum_mismatch"


@dataclass(frozen=True, slots=True)
class UploadLimits:
    max_bytes: int
    max_extracted_bytes: int
    max_members: int
    max_json_bytes: int
    max_expansion_ratio: float


@dataclass(frozen=True, slots=True)
class StoredFile:
    name: str
    size: int
    sha256: str
    kind: FileKind

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256, "kind": self.kind}


class _CountingFile(io.FileIO):
    """The spooled archive, counting the (compressed) bytes read from it."""

    bytes_read = 0

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data


class _Expansion:
    """How far one archive unpacks, against its compressed bytes; refused past the ratio."""

    def __init__(self, name: str, source: _CountingFile, size: int, ratio: float) -> None:
        self._name = name
        self._source = source
        self._size = size
        self._ratio = ratio
        self._declared = 0

    def _allowed(self, compressed: int) -> float:
        return max(RATIO_GRACE_BYTES, self._ratio * compressed)

    def declare(self, size: int) -> None:
        """A member's size as the archive states it (zip central directory, tar header)."""
        self._declared += max(0, size)
        if self._declared > self._allowed(self._size):
            raise self._refusal("declares", self._declared, self._size)

    def produced(self, total: int) -> None:
        """`total` bytes unpacked so far, against the compressed bytes read to get them."""
        compressed = self._source.bytes_read
        if total > self._allowed(compressed):
            raise self._refusal("unpacks", total, compressed)

    def _refusal(self, verb: str, unpacked: int, compressed: int) -> ArchiveExpansionRefused:
        return ArchiveExpansionRefused(
            f"'{self._name}' {verb} {unpacked} bytes from {compressed} compressed bytes, more "
            f"than {self._ratio:g} times as many, which no model archive needs (weights barely "
            "compress). Upload the model's files themselves, or an uncompressed .tar of them."
        )


class _Unreadable(Exception):
    """The archive's compressed data is broken (translated to ArchiveRefused where read)."""


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...
    def close(self) -> None: ...


class _CheckedTarStream:
    """The (decompressed) tar stream as tarfile reads it, held to the expansion ratio."""

    def __init__(self, source: _Readable, expansion: _Expansion) -> None:
        self._source = source
        self._expansion = expansion
        self._position = 0

    def read(self, size: int = -1, /) -> bytes:
        try:
            data = self._source.read(size)
        except (OSError, EOFError, zlib.error) as exc:
            raise _Unreadable(str(exc) or type(exc).__name__) from exc
        self._position += len(data)
        self._expansion.produced(self._position)
        return data

    def tell(self) -> int:
        return self._position

    def write(self, b: bytes, /) -> int:
        raise io.UnsupportedOperation("read-only")

    def seek(self, pos: int, /) -> int:
        raise io.UnsupportedOperation("tar streams are read in order")

    def close(self) -> None:
        self._source.close()


def clean_name(raw: str, *, where: str) -> str:
    name = raw.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    segments = name.split("/")
    if name.startswith("/") or any(s in ("", ".", "..") for s in segments):
        raise ArchiveRefused(f"{where} '{raw}' has an unsafe path (absolute or with '..').")
    for segment in segments:
        if not _SEGMENT.match(segment):
            raise FileRefused(
                f"{where} '{raw}': names may use letters, digits, '.', '_' and '-' only."
            )
    return name


def plain_name(filename: str) -> str:
    """An uploaded file's name: a plain name, no folders (those come inside an archive)."""
    if "/" in filename or "\\" in filename:
        raise FileRefused(
            f"File '{filename}': send plain file names without folders (to upload a "
            "folder, send an archive of it)."
        )
    return clean_name(filename, where="File")


class VersionFiles:
    """One version's files on their way into storage under `prefix`."""

    def __init__(self, storage: Storage, prefix: str, limits: UploadLimits, tmp_dir: Path) -> None:
        self._storage = storage
        self._prefix = prefix
        self._limits = limits
        self._tmp_dir = tmp_dir
        self.files: dict[str, StoredFile] = {}
        self.uploaded_bytes = 0
        self.extracted_bytes = 0
        self.archive = False
        self._expansion: _Expansion | None = None

    # -- budgets ------------------------------------------------------------------------
    def _count_upload(self, size: int) -> None:
        self.uploaded_bytes += size
        if self.uploaded_bytes > self._limits.max_bytes:
            raise PayloadTooLarge(
                f"The upload is larger than {self._limits.max_bytes} bytes, the most allowed."
            )

    def _count_extracted(self, size: int) -> None:
        self.extracted_bytes += size
        if self.extracted_bytes > self._limits.max_extracted_bytes:
            raise ArchiveRefused(
                f"The archive unpacks to more than {self._limits.max_extracted_bytes} bytes."
            )
        if self._expansion is not None:
            self._expansion.produced(self.extracted_bytes)

    # -- files --------------------------------------------------------------------------
    async def add_upload(self, filename: str, chunks: AsyncIterator[bytes]) -> None:
        """A file part of the multipart request (a model file, a .gguf or an archive)."""
        with policy_refusals():
            await self._add_upload(filename, chunks)

    async def add_stored(
        self, filename: str, chunks: AsyncIterator[bytes], *, known: tuple[int, str] | None = None
    ) -> str:
        """A file already stored at `prefix/filename` (assembled from an upload session's
        parts), read back as `chunks`: checked and hashed as add_upload does, not written
        again; returns its SHA-256. With its size and SHA-256 `known` (computed as its parts
        arrived), only what the checks need is read: the head, a safetensors header, a JSON
        file. An archive is unpacked as add_upload unpacks one (its own object is then the
        caller's to remove)."""
        with policy_refusals():
            return await self._add_upload(filename, chunks, stored=True, known=known)

    async def _add_upload(
        self,
        filename: str,
        chunks: AsyncIterator[bytes],
        *,
        stored: bool = False,
        known: tuple[int, str] | None = None,
    ) -> str:
        name = plain_name(filename)
        head, rest = await _head(chunks)
        kind = classify(name, head)
        if kind in ARCHIVES:
            if self.files or self.archive:
                raise ArchiveRefused("Upload an archive on its own, not with other files.")
            self.archive = True
            return await self._extract(name, kind, _prepend(head, rest))
        if self.archive:
            raise ArchiveRefused("Upload an archive on its own, not with other files.")
        await self._store(name, kind, head, rest, self._count_upload, write=not stored, known=known)
        return self.files[name].sha256

    async def _store(
        self,
        name: str,
        kind: FileKind,
        head: bytes,
        rest: AsyncIterator[bytes],
        count: Callable[[int], None],
        *,
        write: bool = True,
        known: tuple[int, str] | None = None,
    ) -> None:
        if name in self.files:
            raise FileRefused(f"'{name}' was sent twice.")
        checker = SafetensorsCheck(name) if kind == FileKind.SAFETENSORS else None
        json_buffer = bytearray() if kind == FileKind.JSON else None
        if kind == FileKind.GGUF:
            check_gguf_head(name, head)

        async def checked() -> AsyncIterator[bytes]:
            async for chunk in _prepend(head, rest):
                count(len(chunk))
                if checker is not None:
                    checker.feed(chunk)
                if json_buffer is not None:
                    json_buffer.extend(chunk)
                    if len(json_buffer) > self._limits.max_json_bytes:
                        raise FileRefused(f"'{name}' is larger than a JSON file may be.")
                yield chunk

        if write:
            stored = await self._storage.put(f"{self._prefix}/{name}", checked())
            size, sha256 = stored.size, stored.sha256
        elif known is not None:
            size, sha256 = known
            count(size)
            # Read only as far as the checks look: a JSON file whole, a safetensors file to
            # the end of its header, anything else not past its (already sniffed) head.
            async for chunk in _prepend(head, rest):
                if checker is not None:
                    checker.feed(chunk)
                if json_buffer is not None:
                    json_buffer.extend(chunk)
                    if len(json_buffer) > self._limits.max_json_bytes:
                        raise FileRefused(f"'{name}' is larger than a JSON file may be.")
                elif checker is None or checker.data_size is not None:
                    break
            if isinstance(rest, AsyncGenerator):
                await rest.aclose()
        else:
            size, sha256 = await _digest(checked())
        if checker is not None:
            checker.finish(size)
        if json_buffer is not None:
            check_json(name, bytes(json_buffer))
        self.files[name] = StoredFile(name, size, sha256, kind)

    # -- archives -----------------------------------------------------------------------
    async def _extract(self, name: str, kind: FileKind, chunks: AsyncIterator[bytes]) -> str:
        """Unpack the archive; returns the archive's own SHA-256."""
        digest = hashlib.sha256()
        with tempfile.TemporaryDirectory(dir=self._tmp_dir) as tmp:
            path = Path(tmp) / "archive"
            size = 0
            async with await anyio.open_file(path, "wb") as spool:
                async for chunk in chunks:
                    self._count_upload(len(chunk))
                    size += len(chunk)
                    digest.update(chunk)
                    await spool.write(chunk)
            with _CountingFile(path, "rb") as source:
                self._expansion = _Expansion(name, source, size, self._limits.max_expansion_ratio)
                await self._extract_members(kind, source, self._expansion)
        if not self.files:
            raise ArchiveRefused(f"'{name}' contains no model files.")
        return digest.hexdigest()

    async def _extract_members(
        self, kind: FileKind, source: _CountingFile, expansion: _Expansion
    ) -> None:
        if kind == FileKind.ZIP:
            members = _zip_members(source, expansion)
        else:
            members = _tar_members(source, kind, expansion)
        top: str | None = None
        count = 0
        async for member_name, is_file, opener in members:
            count += 1
            if count > self._limits.max_members:
                raise ArchiveRefused(
                    f"The archive has more than {self._limits.max_members} members."
                )
            raw = member_name.rstrip("/")
            if not is_file or not raw:
                continue
            segments = raw.replace("\\", "/").split("/")
            hidden = any(s.startswith(".") and s not in (".", "..") for s in segments)
            if (hidden or "__MACOSX" in segments) and ".." not in segments:
                continue  # editor and OS droppings (.gitattributes, __MACOSX/)
            member = clean_name(raw, where="Archive member")
            member, top = _strip_top(member, top)
            stream = opener()
            head, rest = await _head(_read_sync(stream))
            member_kind = classify(member, head)
            if member_kind in ARCHIVES:
                raise ArchiveRefused(f"'{member}': archives inside archives are not accepted.")
            await self._store(member, member_kind, head, rest, self._count_extracted)

    # -- the whole ------------------------------------------------------------------------
    def verify_checksums(self, expected: dict[str, str]) -> None:
        for name, digest in expected.items():
            stored = self.files.get(name)
            if stored is None:
                raise ChecksumMismatch(
                    f"A checksum was given for '{name}', which was not uploaded."
                )
            if stored.sha256 != digest.lower():
                raise ChecksumMismatch(
                    f"'{name}' arrived with SHA-256 {stored.sha256}, not {digest}: the upload "
                    "was corrupted on the way. Upload it again."
                )

    def model_format(self) -> ModelFormat:
        """The version's format, once the set of files is complete (422 if it is not)."""
        gguf = [name for name, stored in self.files.items() if stored.kind == FileKind.GGUF]
        with policy_refusals():
            return model_format(self.files, gguf)


def _strip_top(member: str, top: str | None) -> tuple[str, str | None]:
    """Files may sit at the archive's root or in one top-level folder, which is dropped."""
    first, _, rest = member.partition("/")
    if top is None:
        top = first if rest else ""
    if top:
        if first != top or not rest:
            raise ArchiveRefused(
                "Put the model's files at the archive's root or inside one top-level folder."
            )
        return rest, top
    return member, top


async def _head(chunks: AsyncIterator[bytes]) -> tuple[bytes, AsyncIterator[bytes]]:
    head = bytearray()
    async for chunk in chunks:
        head += chunk
        if len(head) >= SNIFF_BYTES:
            break
    return bytes(head), chunks


async def sniffed(filename: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`chunks` (a file's first bytes onwards), refused before any is passed on when those
    first bytes show a file the policy refuses (pickle, code, a kind no model has)."""
    head, rest = await _head(chunks)
    with policy_refusals():
        classify(filename, head)
    async for chunk in _prepend(head, rest):
        yield chunk


async def _digest(chunks: AsyncIterator[bytes]) -> tuple[int, str]:
    """The size and SHA-256 of what `chunks` yield."""
    digest = hashlib.sha256()
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        digest.update(chunk)
    return size, digest.hexdigest()


async def _prepend(head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if head:
        yield head
    async for chunk in rest:
        yield chunk


async def _read_sync(stream: IO[bytes]) -> AsyncIterator[bytes]:
    """An archive member's bytes (a zip CRC mismatch or broken compressed data is refused)."""
    try:
        while True:
            try:
                chunk = await anyio.to_thread.run_sync(stream.read, CHUNK)
            except (_Unreadable, zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise ArchiveRefused(f"The archive is corrupt: {exc}.") from exc
            if not chunk:
                return
            yield chunk
    finally:
        stream.close()


Member = tuple[str, bool, Callable[[], IO[bytes]]]


async def _tar_members(
    source: _CountingFile, kind: FileKind, expansion: _Expansion
) -> AsyncIterator[Member]:
    # Read as a stream, in order, through our own decompressor: every byte tarfile reads
    # (headers, data, members it skips) passes the ratio check on its way.
    raw: _Readable = gzip.GzipFile(fileobj=source, mode="rb") if kind == FileKind.GZIP else source
    stream = _CheckedTarStream(raw, expansion)
    try:
        archive = await anyio.to_thread.run_sync(
            functools.partial(tarfile.open, fileobj=stream, mode="r|", bufsize=CHUNK)
        )
    except (tarfile.TarError, _Unreadable) as exc:
        raise ArchiveRefused(f"The archive cannot be read: {exc}.") from exc
    with archive:
        while True:
            try:
                info = await anyio.to_thread.run_sync(archive.next)
            except (tarfile.TarError, _Unreadable) as exc:
                raise ArchiveRefused(f"The archive is corrupt: {exc}.") from exc
            if info is None:
                return
            if not (info.isreg() or info.isdir()):
                raise ArchiveRefused(
                    f"Archive member '{info.name}' is a link or device; only regular files "
                    "are accepted."
                )
            # Before its data is read: even a member that is skipped is decompressed to reach
            # the next header.
            expansion.declare(info.size)

            def opener(member: tarfile.TarInfo = info) -> IO[bytes]:
                stream = archive.extractfile(member)
                assert stream is not None  # regular files always have content
                return stream

            yield info.name, info.isreg(), opener


async def _zip_members(source: _CountingFile, expansion: _Expansion) -> AsyncIterator[Member]:
    try:
        archive = await anyio.to_thread.run_sync(zipfile.ZipFile, source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveRefused(f"The zip archive cannot be read: {exc}.") from exc
    with archive:
        # The central directory states every size before anything is unpacked, and zipfile
        # never unpacks past a stated size (overlapping entries are counted once each).
        for info in archive.infolist():
            expansion.declare(info.file_size)
        for info in archive.infolist():
            mode = info.external_attr >> 16
            if mode and (mode & 0o170000) not in (0o100000, 0o040000, 0):
                raise ArchiveRefused(
                    f"Archive member '{info.filename}' is a link or device; only regular files "
                    "are accepted."
                )
            if info.flag_bits & 0x1:
                raise ArchiveRefused(f"Archive member '{info.filename}' is encrypted.")
            yield (
                info.filename,
                not info.is_dir(),
                lambda member=info: archive.open(member),  # type: ignore[misc]
            )
