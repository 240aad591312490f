"""S3-compatible object storage (MinIO, AWS S3, ...) behind the Storage protocol.

Exports S3Storage. The `minio` client is synchronous, so every network call runs in a worker
thread (anyio.to_thread) and the event loop never blocks on the network. Errors are
translated here, at the boundary: a missing key or bucket becomes NotFound, an unreachable or
failing server becomes ServiceUnavailable (with Retry-After), anything else the server
refuses becomes a logged 500 `storage_error`; callers never see minio or urllib3 types.

Objects assembled from parts are S3 multipart uploads. A part's bytes are sent as they arrive,
in the caller's task, to a presigned UploadPart URL with httpx (minio's own part upload wants
the whole part in memory): memory stays at one chunk per part in flight.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
import os
import re
import ssl
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from datetime import timedelta
from typing import TypeVar

import anyio
import certifi
import httpx
import urllib3
from minio import Minio
from minio.datatypes import Part
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError

from shared.errors import LLMNetError, NotFound, PayloadTooLarge, ServiceUnavailable
from shared.storage.base import (
    AssembledObject,
    Crc32c,
    PartSizeMismatch,
    StoredObject,
    StoredPart,
    validate_key,
)

logger = logging.getLogger("llmnet.storage")

T = TypeVar("T")

MIB = 1 << 20
# S3 refuses non-final multipart parts under 5 MiB and objects of more than 10,000 parts.
MIN_PART_SIZE = 5 * MIB
MAX_PARTS = 10_000
# Long enough for clients to back off, short enough that a restarted server is noticed soon.
RETRY_AFTER_S = 5
_MISSING = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchObject", "NoSuchUpload"})
_ERROR_CODE = re.compile(r"<Code>([A-Za-z]{1,64})</Code>")
# How long a presigned part URL is valid: the part must start within it.
_PART_URL_LIFETIME = timedelta(hours=1)
_CONTENT_TYPE = "application/octet-stream"


class S3Storage:
    """Objects are S3 objects named by their key in one bucket.

    Writes stream: at most one part (`part_size` bytes, plus one incoming chunk) is held in
    memory per upload, so an object can be up to `part_size * 10,000` bytes (160 GB at the
    default 16 MiB). The bucket is created on the first write if it does not exist.
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = False,
        region: str | None = None,
        part_size: int = 16 * MIB,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        retries: int = 3,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum).")
        self.endpoint = endpoint
        self.bucket = bucket
        self.part_size = part_size
        self._secure = secure
        self._timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        # minio's own default pool waits 5 minutes to connect and retries 5 times: a request
        # to a dead server would hang for half an hour before we could answer 503. Same pool
        # otherwise (TLS verification against certifi or SSL_CERT_FILE, retry on 5xx).
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            maxsize=10,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            retries=urllib3.Retry(
                total=retries, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
            ),
        )
        self._client = Minio(
            endpoint,
            access_key=access_key or None,
            secret_key=secret_key or None,
            secure=secure,
            region=region,
            http_client=http,
        )
        # Services share one S3Storage across requests (and possibly event loops), so the
        # lazy bucket creation is guarded by a thread lock, not an asyncio one.
        self._bucket_lock = threading.Lock()
        self._bucket_ready = False

    # -- the Storage protocol -------------------------------------------------------------

    async def put(
        self, key: str, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None
    ) -> StoredObject:
        # Why minio's multipart calls instead of put_object(length=-1) over a file-like
        # bridge: the bridge would have minio's thread pull chunks through
        # anyio.from_thread.run, i.e. advance the caller's async iterator from a new task per
        # chunk (breaking iterators that hold a cancel scope or context across yields), and
        # put_object only aborts its multipart upload on Exception, not on cancellation.
        # Here the iterator is consumed in the caller's own task, each chunk is hashed and
        # checked against the cap before it is sent, and every failure (cancellation
        # included) aborts the upload. The cost: _create_multipart_upload/_upload_part/
        # _complete_multipart_upload/_abort_multipart_upload are underscore methods of minio
        # 7.x; the contract tests exercise them against a real S3 server, so a minio release
        # that renames them fails the suite rather than production.
        validate_key(key)
        await self._ensure_bucket()
        digest = hashlib.sha256()
        size = 0
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[Part] = []
        try:
            async for chunk in chunks:
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise PayloadTooLarge(f"The object is larger than {max_bytes} bytes.")
                digest.update(chunk)
                buffer += chunk
                # Strictly greater: an object of exactly one part goes up as a single PUT, and
                # a started multipart upload always has a non-empty final part left over.
                while len(buffer) > self.part_size:
                    if upload_id is None:
                        upload_id = await self._call(
                            "start an upload",
                            key,
                            self._client._create_multipart_upload,
                            self.bucket,
                            key,
                            {"Content-Type": _CONTENT_TYPE},
                        )
                    part = bytes(buffer[: self.part_size])
                    del buffer[: self.part_size]
                    parts.append(await self._upload_part(key, upload_id, len(parts) + 1, part))
            if upload_id is None:
                # Small objects: one PUT; part_size keeps minio from splitting it.
                await self._call(
                    "write",
                    key,
                    self._client.put_object,
                    self.bucket,
                    key,
                    io.BytesIO(bytes(buffer)),
                    len(buffer),
                    content_type=_CONTENT_TYPE,
                    part_size=self.part_size,
                )
            else:
                parts.append(await self._upload_part(key, upload_id, len(parts) + 1, bytes(buffer)))
                await self._call(
                    "finish an upload",
                    key,
                    self._client._complete_multipart_upload,
                    self.bucket,
                    key,
                    upload_id,
                    parts,
                )
        except BaseException:
            if upload_id is not None:
                await self._abort(key, upload_id)
            raise
        return StoredObject(key=key, size=size, sha256=digest.hexdigest())

    async def open(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        validate_key(key)
        response = await self._call("read", key, self._client.get_object, self.bucket, key)
        try:
            while True:
                # urllib3 2 fills `amt` unless the body ends, so chunks are full-sized.
                chunk = await self._call("read", key, response.read, chunk_size)
                if not chunk:
                    return
                yield chunk
        finally:
            # Not in a thread: closing a socket does not block, and an await here would be
            # cancelled straight away when the reader itself is being cancelled.
            response.close()
            response.release_conn()

    async def exists(self, key: str) -> bool:
        validate_key(key)
        try:
            await self._call("look up", key, self._client.stat_object, self.bucket, key)
        except NotFound:
            return False
        return True

    async def delete(self, key: str) -> None:
        validate_key(key)
        # S3 answers 204 for a missing key; only a missing bucket is an error there.
        with contextlib.suppress(NotFound):
            await self._call("delete", key, self._client.remove_object, self.bucket, key)

    async def delete_prefix(self, prefix: str) -> int:
        validate_key(prefix)

        def _remove() -> tuple[int, list[str]]:
            listing = self._client.list_objects(self.bucket, prefix=f"{prefix}/", recursive=True)
            names = [obj.object_name for obj in listing if obj.object_name is not None]
            # remove_objects sends DeleteObjects in batches of 1000 and yields only failures;
            # it is lazy, so it must be drained for anything to happen.
            failures = [
                f"{error.name}: {error.code}"
                for error in self._client.remove_objects(
                    self.bucket, [DeleteObject(name) for name in names]
                )
            ]
            return len(names), failures

        try:
            count, failures = await self._call("delete", prefix, _remove)
        except NotFound:  # no bucket yet, so nothing under the prefix
            return 0
        if failures:
            logger.warning(
                "object storage failed to delete %d of %d objects under %r: %s",
                len(failures),
                count,
                prefix,
                "; ".join(failures[:10]),
            )
            raise ServiceUnavailable(
                f"Object storage could not delete {len(failures)} of {count} objects; "
                "try again shortly.",
                retry_after=RETRY_AFTER_S,
            )
        return count

    # -- objects assembled from parts -------------------------------------------------------

    async def start_parts(self, key: str) -> str:
        validate_key(key)
        await self._ensure_bucket()
        return await self._call(
            "start an upload",
            key,
            self._client._create_multipart_upload,
            self.bucket,
            key,
            {"Content-Type": _CONTENT_TYPE},
        )

    async def put_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        chunks: AsyncIterable[bytes],
        *,
        size: int,
        offset: int,
    ) -> StoredPart:
        validate_key(key)
        if not 1 <= number <= MAX_PARTS:
            raise ValueError(f"part numbers run from 1 to {MAX_PARTS}, not {number}")
        url = await self._call(
            "write",
            key,
            self._client.get_presigned_url,
            "PUT",
            self.bucket,
            key,
            _PART_URL_LIFETIME,
            extra_query_params={"partNumber": str(number), "uploadId": upload_id},
        )
        checksum = Crc32c()
        received = 0

        async def body() -> AsyncIterator[bytes]:
            nonlocal received
            async for chunk in chunks:
                received += len(chunk)
                if received > size:
                    raise PartSizeMismatch(f"Part {number} is longer than {size} bytes.")
                checksum.update(chunk)
                yield chunk
            if received != size:
                raise PartSizeMismatch(f"Part {number} has {received} bytes, not {size}.")

        # A client per part: parts are large, and the storage object outlives event loops.
        try:
            async with httpx.AsyncClient(timeout=self._timeout, verify=self._tls()) as client:
                response = await client.put(
                    url,
                    content=body(),
                    headers={"Content-Length": str(size), "Content-Type": _CONTENT_TYPE},
                )
        except httpx.HTTPError as exc:
            logger.warning("object storage at %s unavailable (write): %s", self.endpoint, exc)
            raise ServiceUnavailable(
                "Object storage is unavailable (could not write); try again shortly.",
                retry_after=RETRY_AFTER_S,
            ) from exc
        if response.status_code != 200:
            raise self._refusal("write", key, response)
        etag = response.headers.get("etag", "").replace('"', "")
        return StoredPart(number=number, size=size, crc32c=checksum.hexdigest(), etag=etag)

    async def complete_parts(
        self, key: str, upload_id: str, parts: Sequence[StoredPart]
    ) -> AssembledObject:
        validate_key(key)
        ordered = sorted(parts, key=lambda p: p.number)
        await self._call(
            "finish an upload",
            key,
            self._client._complete_multipart_upload,
            self.bucket,
            key,
            upload_id,
            [Part(p.number, p.etag) for p in ordered],
        )
        # S3 knows each part's checksum, not the whole object's SHA-256.
        return AssembledObject(key=key, size=sum(p.size for p in ordered), sha256=None)

    async def abort_parts(self, key: str, upload_id: str) -> None:
        validate_key(key)
        with contextlib.suppress(NotFound):
            await self._call(
                "abort an upload",
                key,
                self._client._abort_multipart_upload,
                self.bucket,
                key,
                upload_id,
            )

    def _tls(self) -> ssl.SSLContext | bool:
        if not self._secure:
            return False
        return ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or certifi.where())

    def _refusal(self, action: str, key: str, response: httpx.Response) -> LLMNetError:
        """An S3 error answer to a request sent without minio, translated as _call does."""
        found = _ERROR_CODE.search(response.text)
        code = found.group(1) if found else ""
        if code in _MISSING:
            return NotFound(f"No unfinished upload of {key!r}.")
        if response.status_code >= 500:
            logger.warning(
                "object storage at %s unavailable (%s): %s %s",
                self.endpoint,
                action,
                response.status_code,
                code,
            )
            return ServiceUnavailable(
                f"Object storage is unavailable (could not {action}); try again shortly.",
                retry_after=RETRY_AFTER_S,
            )
        logger.error(
            "object storage refused to %s %r: %s %s", action, key, response.status_code, code
        )
        return LLMNetError(
            f"Object storage refused to {action} ({code or response.status_code}).",
            code="storage_error",
        )

    # -- helpers --------------------------------------------------------------------------

    async def _call(
        self, action: str, key: str, func: Callable[..., T], *args: object, **kw: object
    ) -> T:
        """Run one blocking minio call in a worker thread and translate its errors."""
        try:
            return await anyio.to_thread.run_sync(functools.partial(func, *args, **kw))
        except S3Error as exc:
            if exc.code in _MISSING:
                raise NotFound(f"No stored object {key!r}.") from exc
            # AccessDenied, a bad signature, ...: a misconfiguration, so a 500 that is logged
            # here (LLMNetError responses are otherwise rendered without a log line).
            logger.error("object storage refused to %s %r: %s", action, key, exc)
            raise LLMNetError(
                f"Object storage refused to {action} ({exc.code}).", code="storage_error"
            ) from exc
        except (urllib3.exceptions.HTTPError, ServerError, InvalidResponseError) as exc:
            # Unreachable, timing out, or answering 5xx/non-S3 after urllib3's retries. The
            # endpoint and cause go to the log; the client-facing detail names neither.
            logger.warning("object storage at %s unavailable (%s): %s", self.endpoint, action, exc)
            raise ServiceUnavailable(
                f"Object storage is unavailable (could not {action}); try again shortly.",
                retry_after=RETRY_AFTER_S,
            ) from exc

    async def _upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> Part:
        if number > MAX_PARTS:
            raise PayloadTooLarge(
                f"The object is larger than {MAX_PARTS * self.part_size} bytes "
                f"({MAX_PARTS} parts of {self.part_size})."
            )
        etag = await self._call(
            "write", key, self._client._upload_part, self.bucket, key, data, None, upload_id, number
        )
        return Part(number, etag)

    async def _abort(self, key: str, upload_id: str) -> None:
        """Drop a failed upload's parts; never masks the error that caused the abort."""
        # Shielded: when the upload fails because the caller was cancelled, the abort must
        # still reach the server, or the parts stay stored (and billed) but invisible.
        with anyio.CancelScope(shield=True):
            try:
                await self._call(
                    "abort an upload",
                    key,
                    self._client._abort_multipart_upload,
                    self.bucket,
                    key,
                    upload_id,
                )
            except Exception:
                logger.exception(
                    "could not abort multipart upload %s of %r; a bucket lifecycle rule "
                    "(AbortIncompleteMultipartUpload) will have to reclaim its parts",
                    upload_id,
                    key,
                )

    async def _ensure_bucket(self) -> None:
        if not self._bucket_ready:
            await self._call("create the bucket", self.bucket, self._create_bucket)

    def _create_bucket(self) -> None:
        with self._bucket_lock:
            if self._bucket_ready:
                return
            if not self._client.bucket_exists(self.bucket):
                try:
                    self._client.make_bucket(self.bucket)
                except S3Error as exc:
                    # Another process won the race to create it: that is what we wanted.
                    if exc.code != "BucketAlreadyOwnedByYou":
                        raise
            self._bucket_ready = True
