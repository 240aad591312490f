"""The gateway's /metrics, for administrators only.

Every service answers /metrics on its own port, which only the platform's network reaches; the
gateway's port is the public one, so its metrics (traffic per route, latencies, error rates)
need an administrator's credential: an admin's access token or, for Prometheus, an API key
with the `admin` scope. The route replaces the open one the shared app factory installs.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from starlette.responses import Response

from services.gateway.auth import Authenticator
from services.gateway.config import GatewaySettings
from services.gateway.ratelimit import admit
from shared.auth.identity import Identity
from shared.errors import Forbidden, Unauthorized
from shared.observability import metrics_response


async def require_admin(request: Request) -> Identity:
    """The caller's identity if it is an administrator's; 401 or 403 otherwise."""
    authorization = request.headers.get("authorization")
    if not authorization:
        raise Unauthorized(
            "The gateway's metrics are for administrators: send 'Authorization: Bearer "
            "<admin access token or API key with the admin scope>'.",
            code="authentication_required",
        )
    authenticator: Authenticator = request.app.state.authenticator
    settings: GatewaySettings = request.app.state.settings
    auth = await authenticator.authenticate(authorization)
    # Bans and revoked logins count here as on every proxied request.
    await admit(
        request.app.state.redis,
        subject=f"user:{auth.identity.user_id}",
        limit=settings.rate_limit_per_minute,
        auth=auth,
    )
    if not auth.identity.is_admin:
        raise Forbidden(
            "Only administrators may read the gateway's metrics (an admin's access token, or "
            "an API key with the 'admin' scope).",
            code="admin_required",
        )
    return auth.identity


async def metrics() -> Response:
    return metrics_response()


def install_admin_metrics(app: FastAPI) -> None:
    """Put the admin-only /metrics ahead of the shared, open one: routes match in order, so
    the open route (inside the shared health router) is never reached on the gateway."""
    app.add_api_route(
        "/metrics",
        metrics,
        methods=["GET"],
        summary="Prometheus metrics (administrators)",
        include_in_schema=False,
        dependencies=[Depends(require_admin)],
    )
    routes = app.router.routes
    routes.insert(0, routes.pop())
