"""The one way a service calls another over HTTP: a pooled httpx client that presents the
caller's service credential.

A pooled connection must never be one the other service is closing, or the request sent on it
fails ("Server disconnected") and the caller answers 503 for nothing. Services are uvicorn
apps, which close a connection after 5 s idle (`timeout_keep_alive`) without saying so; httpx
keeps one for 5 s too, so a request sent just then raced the close. Idle connections are
dropped here a second earlier, and a connection that cannot be opened is tried once more.
(The gateway's own pool, on aiohttp, follows the same rule: services/gateway/upstreams.py.)
"""

from __future__ import annotations

import httpx

from shared.auth.service_credentials import ServiceName, service_headers

KEEPALIVE_SECONDS = 4.0  # below uvicorn's default keep-alive timeout (5 s)
CONNECT_TIMEOUT_SECONDS = 5.0


def internal_client(
    base_url: str, caller: ServiceName, service_token: str, *, timeout: float
) -> httpx.AsyncClient:
    limits = httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS)
    return httpx.AsyncClient(
        base_url=base_url,
        headers=service_headers(caller, service_token),
        timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_SECONDS),
        limits=limits,
        transport=httpx.AsyncHTTPTransport(limits=limits, retries=1),
        trust_env=False,
    )
