"""The accounts service app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.accounts.api import router
from services.accounts.auth.revocation import revocation_service
from services.accounts.config import AccountsSettings
from services.accounts.deps import AccountsContext
from shared.app import create_service_app
from shared.auth.passwords import PasswordHasher
from shared.auth.tokens import TokenSigner
from shared.fields import document_bounds


def create_app(settings: AccountsSettings | None = None) -> FastAPI:
    settings = settings or AccountsSettings()

    @asynccontextmanager
    async def resources(app: FastAPI) -> AsyncIterator[None]:
        context = AccountsContext(
            settings=settings,
            signer=TokenSigner(
                settings.jwt_private_key_file.read_bytes(),
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
            ),
            hasher=PasswordHasher(
                concurrency=settings.password_hash_concurrency,
                max_length=settings.password_max_length,
                memory_kib=settings.argon2_memory_kib,
                time_cost=settings.argon2_time_cost,
            ),
            redis=app.state.redis,
            sessionmaker=app.state.sessionmaker,
        )
        app.state.accounts = context
        # Redis may have lost bans and logouts while accounts was away; the worker repeats this.
        await revocation_service.sync(
            context.sessionmaker,
            context.redis,
            access_token_ttl_seconds=settings.access_token_ttl_seconds,
        )
        yield

    app = create_service_app(
        name="accounts",
        title="llmnet accounts",
        description="Users, authentication, API keys, profiles and follows.",
        settings=settings,
        routers=[router],
        resources=resources,
    )
    password = {
        "minLength": settings.password_min_length,
        "maxLength": settings.password_max_length,
    }
    document_bounds(app, {("RegisterRequest", "password"): password})
    return app
