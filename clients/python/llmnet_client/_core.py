"""What the sync and async clients share: request descriptions, credentials, SSE parsing.

Every API method builds a `Call` (method, path, body, what to do with the answer); the
`Client` runs it with `httpx.Client`, the `AsyncClient` with `httpx.AsyncClient`. So each
resource family is written once and serves both.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
API_KEY_PREFIX = "llm_"
# Paths whose 401 means bad credentials in the request itself, never an expired access token.
_NO_REFRESH_PATHS = ("/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/register")

JSON = Any


def default_base_url() -> str:
    return os.environ.get("LLMNET_URL") or DEFAULT_BASE_URL


@dataclass(frozen=True)
class Call:
    """One HTTP request and how to read its answer."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    files: list[tuple[str, tuple[str, Any, str]]] | None = None
    data: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    # json: the decoded body (None for 204); text: the body as text; bytes: raw.
    expect: Literal["json", "text", "bytes"] = "json"
    then: Callable[[Any], Any] | None = None
    timeout: float | None = None
    # False: sent without the credential (login, refresh: an expired token would be refused
    # at the gateway before the request reaches accounts).
    auth: bool = True

    def clean_params(self) -> dict[str, Any] | None:
        if self.params is None:
            return None
        return {key: value for key, value in self.params.items() if value is not None}


def body(**fields: Any) -> dict[str, Any]:
    """A JSON body of the fields that were given (None means "not sent")."""
    return {key: value for key, value in fields.items() if value is not None}


@dataclass(frozen=True)
class Event:
    """One server-sent event."""

    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data) if self.data else None


@dataclass
class StreamSpec:
    """A server-sent event stream and how to resume it.

    `resume(last_event_id)` is the request that picks the stream up after the last event
    seen (None: the first request is not resumable). The stream is over at an event named
    in `terminal`, or when the server ends it if `reconnect_on_end` is false; otherwise it is
    re-opened after a dropped connection (and, with `reconnect_on_end`, after a clean end).
    """

    call: Call
    resume: Callable[[str | None], Call] | None = None
    terminal: frozenset[str] = frozenset()
    reconnect_on_end: bool = False
    last_event_id: str | None = None
    observe: Callable[[Event], None] | None = None
    max_reconnects: int = 20


@dataclass
class PageSpec:
    """A cursor-paged listing: `call` gets `cursor` added; `items` reads a page's items."""

    call: Call
    items: Callable[[Any], Iterable[Any]] = field(default=lambda page: page["items"])
    limit: int | None = None


class SSEDecoder:
    """Incremental parser of the text/event-stream format (comments and retry ignored)."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._buffer = ""

    def feed(self, text: str) -> list[Event]:
        self._buffer += text
        events: list[Event] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                return events
            line, self._buffer = self._buffer[: cut[0]], self._buffer[cut[1] :]
            event = self._line(line)
            if event is not None:
                events.append(event)

    def _line(self, line: str) -> Event | None:
        if not line:
            if not self._data and not self._event:
                self._id = None
                return None
            event = Event(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data, self._id = "", [], None
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\x00" not in value:
            self._id = value
        return None


def _line_end(buffer: str) -> tuple[int, int] | None:
    for index, char in enumerate(buffer):
        if char == "\n":
            return index, index + 1
        if char == "\r":
            if index + 1 == len(buffer):
                return None  # maybe a \r\n split across chunks
            return index, index + (2 if buffer[index + 1] == "\n" else 1)
    return None


@dataclass
class TokenPair:
    access_token: str
    refresh_token: str | None


class Credentials:
    """The client's credential: an API key, or an access token with its refresh token.

    A refreshed pair is handed to `on_tokens` (the CLI saves it to the user's config)."""

    def __init__(
        self,
        api_key: str | None = None,
        access_token: str | None = None,
        refresh_token: str | None = None,
        on_tokens: Callable[[TokenPair], None] | None = None,
    ) -> None:
        self.api_key = api_key
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.on_tokens = on_tokens
        self.lock = threading.Lock()

    @property
    def bearer(self) -> str | None:
        return self.api_key or self.access_token

    def headers(self) -> dict[str, str]:
        bearer = self.bearer
        return {"Authorization": f"Bearer {bearer}"} if bearer else {}

    def can_refresh(self, path: str) -> bool:
        return (
            self.api_key is None
            and self.refresh_token is not None
            and not path.startswith(_NO_REFRESH_PATHS)
        )

    def store(self, answer: Any) -> Any:
        """Keep the tokens of a login or refresh answer; returns the answer."""
        self.api_key = None
        self.access_token = str(answer["access_token"])
        self.refresh_token = answer.get("refresh_token")
        if self.on_tokens is not None:
            self.on_tokens(TokenPair(self.access_token, self.refresh_token))
        return answer

    def clear(self, answer: Any = None) -> Any:
        self.api_key = self.access_token = self.refresh_token = None
        return answer


RETRY_STATUSES = frozenset({429, 503})
MAX_RETRY_AFTER = 60.0


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """How long to wait before retry `attempt` (0-based): the server's hint, else backoff."""
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER)
    return min(0.5 * 2.0**attempt, 8.0)
