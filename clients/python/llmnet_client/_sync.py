"""The synchronous client, on `httpx.Client`."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from llmnet_client import _upload
from llmnet_client._core import (
    RETRY_STATUSES,
    Call,
    Credentials,
    Event,
    PageSpec,
    SSEDecoder,
    StreamSpec,
    TokenPair,
    default_base_url,
    retry_delay,
)
from llmnet_client._resources import Families, Runner
from llmnet_client._version import __version__
from llmnet_client.errors import (
    APIConnectionError,
    AuthenticationError,
    NotFound,
    error_from_response,
)

if TYPE_CHECKING:
    import openai

__all__ = ["Client"]

_STREAM_TIMEOUT = httpx.Timeout(30.0, read=90.0)  # servers send a ping at least every 15 s
_READY_STATES = frozenset({"ready", "failed"})


class Client(
    Families[Any, Iterator[Any], Iterator[Event]], Runner[Any, Iterator[Any], Iterator[Event]]
):
    """The llmnet API, synchronously.

    >>> client = Client("http://127.0.0.1:8000", api_key="llm_...")
    >>> for model in client.models.list(q="poet"):
    ...     print(model["ref"])

    Credentials: an API key (`api_key`, or `LLMNET_API_KEY`), or tokens from
    `client.auth.login(username, password)` (refreshed transparently when they expire; a
    refreshed pair is passed to `on_tokens`). A 429 or 503 is retried after its
    `Retry-After`, `max_retries` times, then raised as `RateLimited` / `ServerError`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        access_token: str | None = None,
        refresh_token: str | None = None,
        on_tokens: Callable[[TokenPair], None] | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = (base_url or default_base_url()).rstrip("/")
        if api_key is None and access_token is None:
            api_key = os.environ.get("LLMNET_API_KEY") or None
        self.credentials = Credentials(api_key, access_token, refresh_token, on_tokens)
        self.max_retries = max_retries
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": f"llmnet-client/{__version__}"},
        )
        self._mount(self)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running calls -----------------------------------------------------------------------

    def call(self, call: Call) -> Any:
        response = self._send(call, stream=False)
        if call.expect == "bytes":
            result: Any = response.content
        elif call.expect == "text":
            result = response.text
        else:
            result = response.json() if response.content else None
        return call.then(result) if call.then is not None else result

    def pages(self, spec: PageSpec) -> Iterator[Any]:
        return self._pages(spec)

    def _pages(self, spec: PageSpec) -> Iterator[Any]:
        cursor: str | None = None
        seen = 0
        while True:
            params = dict(spec.call.params or {})
            if cursor:
                params["cursor"] = cursor
            page = self.call(replace(spec.call, params=params))
            for item in spec.items(page):
                yield item
                seen += 1
                if spec.limit is not None and seen >= spec.limit:
                    return
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def stream(self, spec: StreamSpec) -> Iterator[Event]:
        return self._stream(spec)

    def _stream(self, spec: StreamSpec) -> Iterator[Event]:
        call, last, failures = spec.call, spec.last_event_id, 0
        while True:
            received = False
            try:
                response = self._send(call, stream=True)
                try:
                    decoder = SSEDecoder()
                    for text in response.iter_text():
                        for event in decoder.feed(text):
                            received = True
                            last = event.id or last
                            if spec.observe is not None:
                                spec.observe(event)
                            yield event
                            if event.event in spec.terminal:
                                return
                finally:
                    response.close()
            except (httpx.TransportError, APIConnectionError) as exc:
                if spec.resume is None:
                    raise APIConnectionError(f"the event stream broke: {exc}") from exc
                broke: Exception | None = exc
            else:
                if not (spec.terminal or spec.reconnect_on_end) or spec.resume is None:
                    return
                broke = None
            # Reconnect after the last event seen; connections that bring nothing back off.
            failures = 0 if received else failures + 1
            if failures > spec.max_reconnects:
                raise APIConnectionError(f"the event stream keeps breaking: {broke}")
            if failures:
                time.sleep(retry_delay(failures - 1, None))
            call = spec.resume(last)

    def _request(self, call: Call, stream: bool) -> httpx.Request:
        credential = self.credentials.headers() if call.auth else {}
        headers = {**credential, **(call.headers or {})}
        if stream:
            headers["Accept"] = "text/event-stream"
        timeout: Any = _STREAM_TIMEOUT if stream else (call.timeout or httpx.USE_CLIENT_DEFAULT)
        return self._http.build_request(
            call.method,
            call.path,
            params=call.clean_params(),
            json=call.json,
            content=call.content,
            files=call.files,
            data=call.data,
            headers=headers,
            timeout=timeout,
        )

    def _send(self, call: Call, *, stream: bool) -> httpx.Response:
        refreshed = False
        attempt = 0
        while True:
            sent_with = self.credentials.bearer
            try:
                response = self._http.send(self._request(call, stream), stream=stream)
            except httpx.TransportError as exc:
                raise APIConnectionError(f"{call.method} {call.path}: {exc}") from exc
            if response.status_code < 400:
                return response
            response.read()
            response.close()
            if (
                response.status_code == 401
                and not refreshed
                and self.credentials.can_refresh(call.path)
            ):
                self._refresh(sent_with)
                refreshed = True
                continue
            error = error_from_response(response)
            if (
                response.status_code in RETRY_STATUSES
                and attempt < self.max_retries
                and (response.status_code == 429 or error.retry_after is not None)
            ):
                time.sleep(retry_delay(attempt, error.retry_after))
                attempt += 1
                continue
            raise error

    def _refresh(self, sent_with: str | None) -> None:
        with self.credentials.lock:
            if self.credentials.bearer != sent_with:
                return  # another thread refreshed meanwhile
            try:
                self.auth.refresh()
            except AuthenticationError as exc:
                raise AuthenticationError(
                    "Your login has expired or was revoked; log in again.",
                    status_code=401,
                    code=exc.code,
                    request_id=exc.request_id,
                ) from exc

    # -- what takes more than one call -------------------------------------------------------

    def login(self, username: str, password: str) -> Any:
        return self.auth.login(username, password)

    def upload(
        self,
        model_id: str,
        path: str | Path,
        *,
        session_id: str | None = None,
        part_size: int | None = None,
        parallel: int = 4,
        progress: _upload.ProgressCallback | None = None,
        on_session: Callable[[str], None] | None = None,
        max_attempts: int = 5,
    ) -> Any:
        """Upload a folder (its files), an archive or a GGUF as a new version of `model_id`.

        Sends the files in parts through an upload session, `parallel` parts in flight,
        with SHA-256s computed here and checked by the server. Pass the `session_id` of an
        interrupted upload (given to `on_session` when it started) to send only the parts
        the server is missing; a dropped connection during this call is resumed the same
        way. Returns the new version (validating).
        """
        files = _upload.local_files(path)
        previous = self._previous(model_id, session_id)
        if previous is not None and (done := _upload.finished_version(previous, files)):
            return self.versions.get(model_id, done)  # it completed before: nothing to redo
        session = previous if previous is not None and _upload.resumable(previous, files) else None
        if session is None:
            session = self.upload_sessions.create(
                model_id, [f.describe() for f in files], part_size=part_size
            )
        if on_session is not None:
            on_session(str(session["id"]))
        failures = 0
        while True:
            parts = _upload.missing_parts(session, files)
            if not parts:
                break
            try:
                self._send_parts(model_id, session, parts, parallel, progress)
            except APIConnectionError:
                failures += 1
                if failures >= max_attempts:
                    raise
                time.sleep(retry_delay(failures - 1, None))
            session = self.upload_sessions.get(model_id, session["id"])
        if progress is not None:
            progress(int(session["total_bytes"]), int(session["total_bytes"]))
        return self.upload_sessions.complete(model_id, session["id"])

    def _previous(self, model_id: str, session_id: str | None) -> Any:
        if session_id is None:
            return None
        try:
            return self.upload_sessions.get(model_id, session_id)
        except NotFound:
            return None

    def _send_parts(
        self,
        model_id: str,
        session: Any,
        parts: list[_upload.Part],
        parallel: int,
        progress: _upload.ProgressCallback | None,
    ) -> None:
        total = int(session["total_bytes"])
        done = _upload.received_bytes(session)
        lock = threading.Lock()
        if progress is not None:
            progress(done, total)

        def send(part: _upload.Part) -> None:
            nonlocal done
            data = part.read()
            for _ in range(_upload.SEND_TRIES):
                answer = self.upload_sessions.put_part(
                    model_id, session["id"], part.file.name, part.offset, data
                )
                if _upload.arrived_intact(answer, data):
                    break
            else:
                raise _upload.corrupted(part)
            with lock:
                done += part.length
                if progress is not None:
                    progress(min(done, total), total)

        executor = ThreadPoolExecutor(max_workers=max(1, parallel))
        try:
            futures: list[Future[None]] = [executor.submit(send, part) for part in parts]
            finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
        except BaseException:  # Ctrl-C: leave at once; the session keeps what arrived
            executor.shutdown(wait=False, cancel_futures=True)
            raise
        # After a failure the parts being sent finish (good work); the rest are not started.
        executor.shutdown(wait=True, cancel_futures=True)
        for future in finished:
            future.result()  # raises the first failure

    def wait_for_version(
        self, model_id: str, version_id: str, *, within: float = 600.0, interval: float = 1.0
    ) -> Any:
        """Poll a version until it is ready or failed (TimeoutError after `within` seconds)."""
        deadline = time.monotonic() + within
        while True:
            version = self.versions.get(model_id, version_id)
            if version["status"] in _READY_STATES:
                return version
            if time.monotonic() > deadline:
                raise TimeoutError(f"version {version_id} is still {version['status']}")
            time.sleep(interval)

    def openai_client(self, **options: Any) -> openai.OpenAI:
        """An `openai.OpenAI` for this platform's OpenAI-compatible API (`/v1`), with this
        client's credential (an API key is best: an access token expires)."""
        import openai

        return openai.OpenAI(
            base_url=f"{self.base_url}/v1", api_key=self.credentials.bearer or "", **options
        )
