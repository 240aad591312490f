"""The gateway's pooled clients, one per upstream service.

aiohttp rather than httpx on this one path: measured on this project's 2-core machine, a
keep-alive loopback GET costs 0.40 ms with aiohttp against 1.67 ms with httpx (0.27 ms for a
bare socket), and the gateway pays that on every request. The rest of the platform uses httpx.
"""

from __future__ import annotations

import aiohttp

from services.gateway.config import GatewaySettings
from services.gateway.routing import upstream_urls

Upstreams = dict[str, aiohttp.ClientSession]


def create_upstreams(settings: GatewaySettings) -> Upstreams:
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=settings.connect_timeout_seconds,
        sock_read=settings.upstream_timeout_seconds,
    )
    return {
        name: aiohttp.ClientSession(
            base_url=url,
            timeout=timeout,
            connector=aiohttp.TCPConnector(
                limit=settings.max_upstream_connections, keepalive_timeout=30
            ),
            # The proxy relays the upstream's exact bytes and headers.
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        for name, url in upstream_urls(settings).items()
    }


async def close_upstreams(upstreams: Upstreams) -> None:
    for session in upstreams.values():
        await session.close()
