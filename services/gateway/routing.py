"""Which service serves a path, and which paths anonymous callers may reach."""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.gateway.config import GatewaySettings

# Public prefixes and their owners (DESIGN.md's table). Longest prefix wins.
PREFIXES: tuple[tuple[str, str], ...] = (
    ("/api/v1/auth", "accounts"),
    ("/api/v1/users", "accounts"),
    ("/api/v1/admin/users", "accounts"),
    ("/api/v1/admin/audit", "accounts"),
    ("/api/v1/models", "models_hub"),
    ("/api/v1/providers", "models_hub"),
    ("/api/v1/fine-tunes", "models_hub"),
    ("/api/v1/evaluations", "inference"),
    ("/api/v1/prompt-lab", "inference"),
    ("/v1", "inference"),
    ("/api/v1/conversations", "inference"),
    ("/api/v1/usage", "inference"),
    ("/api/v1/prompt-templates", "inference"),
    ("/api/v1/activity", "inference"),
    ("/api/v1/admin/activity", "inference"),
    ("/api/v1/admin/conversations", "inference"),
    ("/api/v1/admin/messages", "inference"),
    ("/api/v1/admin/engine", "inference"),
    ("/api/v1/posts", "feed"),
    ("/api/v1/feed", "feed"),
    ("/api/v1/notifications", "feed"),
    ("/api/v1/recommendations", "feed"),
)
_BY_LENGTH = sorted(PREFIXES, key=lambda item: len(item[0]), reverse=True)

_ANONYMOUS_POSTS = frozenset(
    {
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        # The web app's: the login cookie (and a CSRF token) is the credential.
        "/api/v1/auth/cookie/login",
        "/api/v1/auth/cookie/refresh",
        "/api/v1/auth/cookie/logout",
        # Mailed links: the token in the body is the credential.
        "/api/v1/auth/email/verify",
        "/api/v1/auth/password/forgot",
        "/api/v1/auth/password/reset",
    }
)
_PRIVATE_READS = (
    "/v1",
    "/api/v1/usage",
    "/api/v1/users/me",
    "/api/v1/admin",
    "/api/v1/notifications",
    "/api/v1/conversations",
    "/api/v1/prompt-templates",
    "/api/v1/activity",
    "/api/v1/evaluations",
    "/api/v1/prompt-lab",
)


_UPLOAD = re.compile(
    r"^/api/v1/models/[^/]+/(versions|fine-tunes)/?$|^/api/v1/conversations/[^/]+/attachments/?$"
)


# A part of an upload session (PUT .../upload-sessions/{id}/files/{name}?offset=N).
_UPLOAD_PART = re.compile(r"^/api/v1/models/[^/]+/upload-sessions/[^/]+/files/[^/]+$")


def is_upload(method: str, path: str) -> bool:
    """File uploads (model versions and their upload-session parts, fine-tune datasets,
    conversation attachments): bodies past the common cap, each bounded by the service that
    receives it."""
    if method == "PUT":
        return _UPLOAD_PART.match(path) is not None
    return method == "POST" and _UPLOAD.match(path) is not None


@dataclass(frozen=True, slots=True)
class Route:
    prefix: str
    service: str


# Follows of models live with the feed (it owns model_follows and the timelines they fill), beside
# the hub's `/{model_id}/like`: that one path under the hub's prefix goes to the feed.
_MODEL_FOLLOW = re.compile(r"^/api/v1/models/[^/]+/follow$")
MODEL_FOLLOW_ROUTE = "/api/v1/models/{model_id}/follow"
# Evaluations of a model live with the inference service (it owns them and its worker runs
# them): that one path family under the hub's prefix goes to inference.
_MODEL_EVALUATIONS = re.compile(r"^/api/v1/models/(?:[^/]+|by-ref/[^/]+/[^/]+)/evaluations$")
MODEL_EVALUATIONS_ROUTE = "/api/v1/models/{model}/evaluations"


def match(path: str) -> Route | None:
    if _MODEL_FOLLOW.match(path):
        return Route(MODEL_FOLLOW_ROUTE, "feed")
    if _MODEL_EVALUATIONS.match(path):
        return Route(MODEL_EVALUATIONS_ROUTE, "inference")
    for prefix, service in _BY_LENGTH:
        if path == prefix or path.startswith(prefix + "/"):
            return Route(prefix, service)
    return None


def allows_anonymous(method: str, path: str) -> bool:
    """Public reads and the sign-up/log-in endpoints; everything else needs credentials."""
    if method == "POST":
        return path in _ANONYMOUS_POSTS
    if method in {"GET", "HEAD", "OPTIONS"}:
        return not any(path == p or path.startswith(p + "/") for p in _PRIVATE_READS)
    return False


def upstream_urls(settings: GatewaySettings) -> dict[str, str]:
    return {
        "accounts": settings.accounts_url,
        "models_hub": settings.models_hub_url,
        "inference": settings.inference_url,
        "feed": settings.feed_url,
    }
