"""Inference replicas: which one serves a request, and which ones are alive.

Several inference processes serve many models, each keeping the weights of the models it
serves in memory. So requests for one model should reach a small, stable set of replicas:

- The key of a request (`request_key`): the body's `model` on `/v1/chat/completions` and
  `/v1/completions` (the gateway reads the JSON body it buffers anyway); the conversation id
  on `/api/v1/conversations/{id}/...`, since the gateway cannot know a conversation's model
  without reading it, and one replica per conversation keeps its turns together (the replica's
  prefix cache stays warm, a re-attach to an answer lands where it is being written). Requests
  without a key (lists, usage, templates, ...) go to any live replica, in turn.
- Rendezvous (highest-random-weight) hashing (`rendezvous`): every replica scores
  hash(key, replica) and the key's order is the replicas by descending score. A model's
  replicas are the first `GATEWAY_INFERENCE_REPLICAS_PER_MODEL` of that order (more for the
  models in `GATEWAY_INFERENCE_MODEL_REPLICAS`; a conversation always has one). Each gateway
  computes the same order on its own, and when a replica joins or leaves only the keys it
  gains or held move: nothing else is reshuffled (no ring, no virtual nodes).
- A model's requests are spread over its replicas: the one with the fewest requests in flight
  from this gateway, in turn among equals.
- Failover: the rest of the order follows. A replica whose readiness check failed
  (`GATEWAY_INFERENCE_HEALTH_SECONDS`), or that refused a connection since, is tried only after
  every live one; the proxy goes on down the order when a replica cannot be reached or
  answers 503 before any body (draining on SIGTERM, its queue full).

The replica set comes from `GATEWAY_INFERENCE_URLS` (a list; empty means the one
INFERENCE_URL), or from a Kubernetes headless Service (`GATEWAY_INFERENCE_HEADLESS_URL`): its
name resolves to one A record per ready pod, re-resolved every
`GATEWAY_INFERENCE_RESOLVE_SECONDS`.

Exports: Replica, ReplicaSet, RequestKey, request_key, rendezvous, replica_id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from prometheus_client import Gauge
from starlette.requests import Request
from yarl import URL

from services.gateway.config import GatewaySettings
from shared.health import UPSTREAM_TIMEOUT, NotReady

logger = logging.getLogger("llmnet.gateway.replicas")

REPLICA_UP = Gauge(
    "llmnet_gateway_inference_replica_up",
    "Whether the gateway sends requests to an inference replica (its readiness check passed).",
    ["replica"],
)

Resolver = Callable[[str, int], Awaitable[list[str]]]

_MODEL_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})
_CONVERSATION = re.compile(r"^/api/v1/conversations/([^/]+)(?:/|$)")


def replica_id(origin: str) -> str:
    """A short, stable name for a replica (the `X-LLMNet-Replica` header, metrics, logs):
    every gateway derives the same one, and it does not publish internal addresses."""
    return hashlib.blake2b(origin.encode(), digest_size=6).hexdigest()


def _score(key: str, replica: str) -> int:
    digest = hashlib.blake2b(f"{key}\x00{replica}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rendezvous(key: str, replicas: Sequence[str]) -> list[str]:
    """`replicas` in the key's rendezvous order (highest score first)."""
    return sorted(replicas, key=lambda replica: (_score(key, replica), replica), reverse=True)


@dataclass(frozen=True, slots=True)
class RequestKey:
    key: str
    spread: int  # how many of the key's first replicas share its requests


def request_key(
    method: str, path: str, body: bytes | None, settings: GatewaySettings
) -> RequestKey | None:
    """What ties a request to replicas (see the module doc); None: any replica will do."""
    if method == "POST" and path in _MODEL_PATHS:
        model = _body_model(body)
        if model is None:
            return None  # the service answers the malformed request itself
        spread = settings.inference_model_replicas.get(model, settings.inference_replicas_per_model)
        return RequestKey(f"model:{model}", spread)
    if found := _CONVERSATION.match(path):
        return RequestKey(f"conversation:{found.group(1).lower()}", 1)
    return None


def _body_model(body: bytes | None) -> str | None:
    if not body:
        return None
    try:
        document: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    model = document.get("model") if isinstance(document, dict) else None
    return model.strip().lower() if isinstance(model, str) and model.strip() else None


class Replica:
    """One inference process as the gateway sees it."""

    __slots__ = ("alive", "id", "in_flight", "origin")

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.id = replica_id(origin)
        self.alive = True  # until a check says otherwise: a new replica is tried at once
        self.in_flight = 0

    def __repr__(self) -> str:
        return f"Replica({self.origin!r}, alive={self.alive})"


async def resolve_ipv4(host: str, port: int) -> list[str]:
    """The host's A records (a headless Service has one per ready pod). IPv4 only: in a
    dual-stack cluster a pod also has an AAAA record, and would count as two replicas."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


class ReplicaSet:
    """The live inference replicas, kept fresh by a background task (`start`/`stop`)."""

    def __init__(
        self,
        settings: GatewaySettings,
        session: aiohttp.ClientSession,
        *,
        resolve: Resolver = resolve_ipv4,
    ) -> None:
        self._settings = settings
        self._session = session
        self._resolve = resolve
        self._turn = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self._by_origin: dict[str, Replica] = {}
        self._headless = URL(settings.inference_headless_url or "")
        if not settings.inference_headless_url:
            self._replace(settings.inference_urls or [settings.inference_url])

    @property
    def replicas(self) -> list[Replica]:
        return list(self._by_origin.values())

    def _replace(self, urls: Sequence[str]) -> None:
        origins = list(dict.fromkeys(str(URL(url).origin()) for url in urls))
        for gone in set(self._by_origin) - set(origins):
            logger.warning("inference replica %s left the set", gone)
            with contextlib.suppress(KeyError):
                REPLICA_UP.remove(self._by_origin[gone].id)
            del self._by_origin[gone]
        for origin in origins:
            if origin not in self._by_origin:
                replica = self._by_origin[origin] = Replica(origin)
                REPLICA_UP.labels(replica.id).set(1)
                logger.info("inference replica %s (%s) joined the set", origin, replica.id)

    def candidates(self, key: RequestKey | None) -> list[Replica]:
        """The replicas to try for a request, in order: live ones first (the key's own, the
        least busy first), then the rest of the rendezvous order; dead ones last, in case every
        check is wrong (the replicas then answer for themselves)."""
        replicas = self._by_origin
        if not replicas:
            return []
        if key is None:
            order = list(replicas.values())
            start = next(self._turn) % len(order)
            order = order[start:] + order[:start]
        else:
            ranked = [replicas[o] for o in rendezvous(key.key, list(replicas))]
            own, rest = ranked[: key.spread], ranked[key.spread :]
            start = next(self._turn) % len(own)
            # Stable: among equally busy replicas the turn decides.
            own = sorted(own[start:] + own[:start], key=lambda replica: replica.in_flight)
            order = own + rest
        return [r for r in order if r.alive] + [r for r in order if not r.alive]

    def mark_dead(self, replica: Replica, reason: str) -> None:
        if replica.alive:
            logger.warning("inference replica %s is down: %s", replica.origin, reason)
        replica.alive = False
        REPLICA_UP.labels(replica.id).set(0)

    def _mark_alive(self, replica: Replica) -> None:
        if not replica.alive:
            logger.warning("inference replica %s is back", replica.origin)
        replica.alive = True
        REPLICA_UP.labels(replica.id).set(1)

    def any_alive(self) -> bool:
        return any(replica.alive for replica in self._by_origin.values())

    def any_origin(self) -> str | None:
        """The origin of some replica, a live one where there is one (None: none known)."""
        candidates = self.candidates(None)
        return candidates[0].origin if candidates else None

    async def check(self, replica: Replica) -> None:
        """Ask the replica's /readyz (a draining replica answers 503)."""
        try:
            async with (
                asyncio.timeout(UPSTREAM_TIMEOUT),
                self._session.get(f"{replica.origin}/readyz") as response,
            ):
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.mark_dead(replica, f"{type(exc).__name__}: {exc}")
            return
        if status == 200:
            self._mark_alive(replica)
        else:
            self.mark_dead(replica, f"/readyz answered {status}")

    async def refresh(self) -> None:
        """Resolve the headless Service again; a failed lookup keeps the set as it was."""
        host, port = self._headless.host, self._headless.port
        if host is None or port is None:
            return
        try:
            addresses = await self._resolve(host, port)
        except OSError as exc:
            logger.warning("could not resolve %s: %s", host, exc)
            return
        if not addresses:
            logger.warning("%s resolves to no address; keeping the replicas known", host)
            return
        scheme = self._headless.scheme
        self._replace([f"{scheme}://{address}:{port}" for address in addresses])

    async def _watch(self) -> None:
        settings = self._settings
        loop = asyncio.get_running_loop()
        resolved_at: float | None = None
        while True:
            now = loop.time()
            if resolved_at is None or now - resolved_at >= settings.inference_resolve_seconds:
                await self.refresh()
                resolved_at = now
            await asyncio.gather(*(self.check(replica) for replica in self.replicas))
            await asyncio.sleep(settings.inference_health_seconds)

    async def start(self) -> None:
        if self._headless.host is not None:
            await self.refresh()  # the first set before the first request
        self._task = asyncio.create_task(self._watch(), name="inference-replicas")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for replica in self._by_origin.values():
            with contextlib.suppress(KeyError):
                REPLICA_UP.remove(replica.id)


async def inference_ready(request: Request) -> None:
    """The gateway's readiness for inference: some replica passed its last check."""
    replicas: ReplicaSet = request.app.state.replicas
    if not replicas.any_alive():
        raise NotReady("no inference replica is ready")
