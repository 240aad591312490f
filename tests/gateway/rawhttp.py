"""Requests whose target is sent exactly as written: no client-side normalisation.

httpx (like browsers) resolves `..` and re-quotes a URL before sending it; an attacker's raw
socket does not. `http.client` writes the request target as given, so that is what these
helpers use, in a worker thread.
"""

from __future__ import annotations

import asyncio
import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


def _send(base_url: str, method: str, target: str, headers: dict[str, str]) -> RawResponse:
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=30)
    try:
        connection.request(method, target, headers=headers)
        response = connection.getresponse()
        return RawResponse(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        connection.close()


async def raw_request(
    base_url: str, target: str, *, method: str = "GET", headers: dict[str, str] | None = None
) -> RawResponse:
    """Send `method target HTTP/1.1` to base_url, with `target` byte for byte."""
    return await asyncio.to_thread(_send, base_url, method, target, headers or {})
