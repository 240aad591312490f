"""One OpenAPI document for the whole platform, merged from the services' own documents.

Only paths the gateway routes are kept (internal endpoints and probes are not public). Schema
names two services define differently are prefixed with the service name, and that service's
references rewritten, so no definition silently replaces another.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from services.gateway.routing import match
from services.gateway.upstreams import Upstreams

logger = logging.getLogger("llmnet.gateway.openapi")

SECURITY_SCHEMES: dict[str, Any] = {
    "OAuth2Password": {
        "type": "oauth2",
        "description": "Log in with username and password (Swagger's Authorize button).",
        "flows": {"password": {"tokenUrl": "/api/v1/auth/login", "scopes": {}}},
    },
    "BearerToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "An access token or an API key (llm_...).",
    },
}


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                name = value.rsplit("/", 1)[-1]
                out[key] = f"#/components/schemas/{renames.get(name, name)}"
            else:
                out[key] = _rename_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rename_refs(item, renames) for item in node]
    return node


def merge_documents(documents: dict[str, dict[str, Any]], *, title: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for service, document in documents.items():
        own = document.get("components", {}).get("schemas", {})
        renames = {
            name: f"{service}__{name}"
            for name, schema in own.items()
            if name in schemas
            and json.dumps(schemas[name], sort_keys=True) != json.dumps(schema, sort_keys=True)
        }
        document = _rename_refs(document, renames)
        for name, schema in document.get("components", {}).get("schemas", {}).items():
            schemas.setdefault(renames.get(name, name), schema)
        for path, item in document.get("paths", {}).items():
            if match(path) is not None:
                paths[path] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": "0.1.0",
            "description": "The llmnet platform API: every service behind one gateway. "
            "Authenticate with an access token (log in) or an API key.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
        # Optional everywhere ({}): public reads work without credentials.
        "security": [{"OAuth2Password": []}, {"BearerToken": []}, {}],
    }


class OpenAPICache:
    """Fetches the services' documents and keeps the merged one for a short while."""

    def __init__(
        self,
        upstreams: Upstreams,
        *,
        ttl_seconds: int,
        origins: Mapping[str, Callable[[], str | None]] | None = None,
    ) -> None:
        self._upstreams = upstreams
        # Where a service runs as replicas, the origin of one that is up (else the base URL).
        self._origins = origins or {}
        self._ttl = ttl_seconds
        self._document: dict[str, Any] | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def _fetch(self, service: str, session: aiohttp.ClientSession) -> dict[str, Any] | None:
        try:
            origin = self._origins[service]() if service in self._origins else None
            async with session.get(f"{origin or ''}/openapi.json") as response:
                response.raise_for_status()
                document: dict[str, Any] = await response.json()
                return document
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.warning("no OpenAPI document from %s: %s", service, exc)
            return None

    async def document(self) -> dict[str, Any]:
        async with self._lock:
            fresh = time.monotonic() - self._fetched_at < self._ttl
            if self._document is not None and fresh:
                return self._document
            names = list(self._upstreams)
            fetched = await asyncio.gather(
                *(self._fetch(name, self._upstreams[name]) for name in names)
            )
            documents = {name: doc for name, doc in zip(names, fetched, strict=True) if doc}
            merged = merge_documents(documents, title="llmnet")
            # Only a complete document is cached; a partial one is retried on the next request.
            if len(documents) == len(names):
                self._document, self._fetched_at = merged, time.monotonic()
            return merged
