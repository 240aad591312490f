"""The asynchronous client, on `httpx.AsyncClient`: the same families, awaited."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
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

__all__ = ["AsyncClient"]

_STREAM_TIMEOUT = httpx.Timeout(30.0, read=90.0)
_READY_STATES = frozenset({"ready", "failed"})

_AsyncFamilies = Families[Awaitable[Any], AsyncIterator[Any], AsyncIterator[Event]]
_AsyncRunner = Runner[Awaitable[Any], AsyncIterator[Any], AsyncIterator[Event]]


class AsyncClient(_AsyncFamilies, _AsyncRunner):
    """The llmnet API for asyncio: every call is awaited, listings and streams are async
    iterators. Same options as `Client`.

    >>> async with AsyncClient(api_key="llm_...") as client:
    ...     async for event in client.conversations.stream(conversation_id, "Hello"):
    ...         print(event.event, event.data)
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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = (base_url or default_base_url()).rstrip("/")
        if api_key is None and access_token is None:
            api_key = os.environ.get("LLMNET_API_KEY") or None
        self.credentials = Credentials(api_key, access_token, refresh_token, on_tokens)
        self.max_retries = max_retries
        self._refresh_lock = asyncio.Lock()
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": f"llmnet-client/{__version__}"},
        )
        self._mount(self)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- running calls -----------------------------------------------------------------------

    def call(self, call: Call) -> Awaitable[Any]:
        return self._call(call)

    async def _call(self, call: Call) -> Any:
        response = await self._send(call, stream=False)
        if call.expect == "bytes":
            result: Any = response.content
        elif call.expect == "text":
            result = response.text
        else:
            result = response.json() if response.content else None
        return call.then(result) if call.then is not None else result

    def pages(self, spec: PageSpec) -> AsyncIterator[Any]:
        return self._pages(spec)

    async def _pages(self, spec: PageSpec) -> AsyncIterator[Any]:
        cursor: str | None = None
        seen = 0
        while True:
            params = dict(spec.call.params or {})
            if cursor:
                params["cursor"] = cursor
            page = await self._call(replace(spec.call, params=params))
            for item in spec.items(page):
                yield item
                seen += 1
                if spec.limit is not None and seen >= spec.limit:
                    return
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def stream(self, spec: StreamSpec) -> AsyncIterator[Event]:
        return self._stream(spec)

    async def _stream(self, spec: StreamSpec) -> AsyncIterator[Event]:
        call, last, failures = spec.call, spec.last_event_id, 0
        while True:
            received = False
            try:
                response = await self._send(call, stream=True)
                try:
                    decoder = SSEDecoder()
                    async for text in response.aiter_text():
                        for event in decoder.feed(text):
                            received = True
                            last = event.id or last
                            if spec.observe is not None:
                                spec.observe(event)
                            yield event
                            if event.event in spec.terminal:
                                return
                finally:
                    await response.aclose()
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
                await asyncio.sleep(retry_delay(failures - 1, None))
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

    async def _send(self, call: Call, *, stream: bool) -> httpx.Response:
        refreshed = False
        attempt = 0
        while True:
            sent_with = self.credentials.bearer
            try:
                response = await self._http.send(self._request(call, stream), stream=stream)
            except httpx.TransportError as exc:
                raise APIConnectionError(f"{call.method} {call.path}: {exc}") from exc
            if response.status_code < 400:
                return response
            await response.aread()
            await response.aclose()
            if (
                response.status_code == 401
                and not refreshed
                and self.credentials.can_refresh(call.path)
            ):
                await self._refresh(sent_with)
                refreshed = True
                continue
            error = error_from_response(response)
            if (
                response.status_code in RETRY_STATUSES
                and attempt < self.max_retries
                and (response.status_code == 429 or error.retry_after is not None)
            ):
                await asyncio.sleep(retry_delay(attempt, error.retry_after))
                attempt += 1
                continue
            raise error

    async def _refresh(self, sent_with: str | None) -> None:
        async with self._refresh_lock:
            if self.credentials.bearer != sent_with:
                return
            try:
                await self.auth.refresh()
            except AuthenticationError as exc:
                raise AuthenticationError(
                    "Your login has expired or was revoked; log in again.",
                    status_code=401,
                    code=exc.code,
                    request_id=exc.request_id,
                ) from exc

    # -- what takes more than one call -------------------------------------------------------

    async def login(self, username: str, password: str) -> Any:
        return await self.auth.login(username, password)

    async def upload(
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
        """`Client.upload`, with `parallel` parts in flight as tasks."""
        files = await asyncio.to_thread(_upload.local_files, path)
        previous = await self._previous(model_id, session_id)
        if previous is not None and (done := _upload.finished_version(previous, files)):
            return await self.versions.get(model_id, done)  # it completed before: nothing to redo
        session = previous if previous is not None and _upload.resumable(previous, files) else None
        if session is None:
            session = await self.upload_sessions.create(
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
                await self._send_parts(model_id, session, parts, parallel, progress)
            except APIConnectionError:
                failures += 1
                if failures >= max_attempts:
                    raise
                await asyncio.sleep(retry_delay(failures - 1, None))
            session = await self.upload_sessions.get(model_id, session["id"])
        if progress is not None:
            progress(int(session["total_bytes"]), int(session["total_bytes"]))
        return await self.upload_sessions.complete(model_id, session["id"])

    async def _previous(self, model_id: str, session_id: str | None) -> Any:
        if session_id is None:
            return None
        try:
            return await self.upload_sessions.get(model_id, session_id)
        except NotFound:
            return None

    async def _send_parts(
        self,
        model_id: str,
        session: Any,
        parts: list[_upload.Part],
        parallel: int,
        progress: _upload.ProgressCallback | None,
    ) -> None:
        total = int(session["total_bytes"])
        done = _upload.received_bytes(session)
        if progress is not None:
            progress(done, total)
        queue = list(reversed(parts))
        failures: list[Exception] = []

        async def worker() -> None:
            # After a failure the others finish the part they are sending (it is good work)
            # and take no more; the caller asks the session what is missing.
            nonlocal done
            while queue and not failures:
                part = queue.pop()
                try:
                    data = await asyncio.to_thread(part.read)
                    for _ in range(_upload.SEND_TRIES):
                        answer = await self.upload_sessions.put_part(
                            model_id, session["id"], part.file.name, part.offset, data
                        )
                        if _upload.arrived_intact(answer, data):
                            break
                    else:
                        raise _upload.corrupted(part)
                except Exception as exc:
                    failures.append(exc)
                    return
                done += part.length
                if progress is not None:
                    progress(min(done, total), total)

        await asyncio.gather(*(worker() for _ in range(max(1, min(parallel, len(parts))))))
        if failures:
            raise failures[0]

    async def wait_for_version(
        self, model_id: str, version_id: str, *, within: float = 600.0, interval: float = 1.0
    ) -> Any:
        deadline = time.monotonic() + within
        while True:
            version = await self.versions.get(model_id, version_id)
            if version["status"] in _READY_STATES:
                return version
            if time.monotonic() > deadline:
                raise TimeoutError(f"version {version_id} is still {version['status']}")
            await asyncio.sleep(interval)

    def openai_client(self, **options: Any) -> openai.AsyncOpenAI:
        """An `openai.AsyncOpenAI` for this platform's `/v1`, with this client's credential."""
        import openai

        return openai.AsyncOpenAI(
            base_url=f"{self.base_url}/v1", api_key=self.credentials.bearer or "", **options
        )
