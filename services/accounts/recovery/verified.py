"""The REQUIRE_VERIFIED_EMAIL gate, as a router dependency (services/accounts/api.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from services.accounts.deps import ContextDep
from services.accounts.recovery.service import recovery_service
from shared.auth.identity import OptionalUser
from shared.db import SessionDep


def require_verified_email(*methods: str) -> Callable[..., Awaitable[None]]:
    """With REQUIRE_VERIFIED_EMAIL on, refuse the router's `methods` (403 email_not_verified)
    to signed-in users whose email is not verified yet. Administrators are exempt: operators
    create them (`llmnet create-admin`), not a mailed link."""
    gated = frozenset(methods)

    async def check(
        request: Request, identity: OptionalUser, session: SessionDep, ctx: ContextDep
    ) -> None:
        if not ctx.settings.require_verified_email or request.method not in gated:
            return
        if identity is None or identity.is_admin:
            return  # the route itself refuses anonymous callers
        await recovery_service.ensure_verified(session, identity.user_id)

    return check
