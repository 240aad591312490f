"""Registering external providers, their models, and testing the connection."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from services.models_hub.catalog.schemas import ModelCreate
from services.models_hub.catalog.service import catalog_service, slugify
from services.models_hub.deps import HubContext
from services.models_hub.models import Model, ModelSource, Provider
from services.models_hub.providers import repository
from services.models_hub.providers.schemas import (
    ConnectionTest,
    ProviderCreate,
    ProviderRead,
    ProviderUpdate,
    RemoteModelCreate,
)
from shared.auth.identity import Identity
from shared.errors import NotFound
from shared.models_client import RemoteEndpoint
from shared.outbound import check_outbound_url, pin_outbound_url


class ProviderNotFound(NotFound):
    code = "provider_not_found"


class ProviderService:
    async def _owned(
        self, session: AsyncSession, provider_id: uuid.UUID, viewer: Identity
    ) -> Provider:
        provider = await repository.get_provider(session, provider_id)
        # Someone else's provider does not exist for you (admins see all).
        if provider is None or (provider.owner_id != viewer.user_id and not viewer.is_admin):
            raise ProviderNotFound("No such provider among yours.")
        return provider

    async def _reads(
        self, session: AsyncSession, providers: Sequence[Provider]
    ) -> list[ProviderRead]:
        served = await repository.model_ids(session, [p.id for p in providers])
        return [
            ProviderRead(
                id=provider.id,
                name=provider.name,
                base_url=provider.base_url,
                has_api_key=provider.api_key_encrypted is not None,
                model_ids=served.get(provider.id, []),
                created_at=provider.created_at,
                updated_at=provider.updated_at,
            )
            for provider in providers
        ]

    async def _read(self, session: AsyncSession, provider: Provider) -> ProviderRead:
        (read,) = await self._reads(session, [provider])
        return read

    async def create(
        self, session: AsyncSession, ctx: HubContext, viewer: Identity, data: ProviderCreate
    ) -> ProviderRead:
        await catalog_service.ensure_can_create(session, ctx, viewer)
        base_url = await check_outbound_url(data.base_url, allow=ctx.settings.outbound_allow)
        provider = await repository.add_provider(
            session,
            Provider(
                owner_id=viewer.user_id,
                name=data.name,
                base_url=base_url,
                api_key_encrypted=ctx.secrets.encrypt(data.api_key) if data.api_key else None,
            ),
        )
        for remote in data.models:
            await self._add_model(session, ctx, viewer, provider, remote)
        await repository.reload(session, provider)
        return await self._read(session, provider)

    async def _add_model(
        self,
        session: AsyncSession,
        ctx: HubContext,
        viewer: Identity,
        provider: Provider,
        remote: RemoteModelCreate,
    ) -> Model:
        # A model name holds 100 characters, a provider's model id 200.
        name = remote.name or remote.remote_model[:100]
        return await catalog_service.create(
            session,
            ctx,
            viewer,
            ModelCreate(
                name=name,
                slug=remote.slug or slugify(name),
                description=remote.description,
                visibility=remote.visibility,
                daily_token_cap=remote.daily_token_cap,
                user_daily_token_cap=remote.user_daily_token_cap,
            ),
            source=ModelSource.REMOTE,
            provider_id=provider.id,
            remote_model=remote.remote_model,
            context_length=remote.context_length,
        )

    async def add_model(
        self,
        session: AsyncSession,
        ctx: HubContext,
        viewer: Identity,
        provider_id: uuid.UUID,
        remote: RemoteModelCreate,
    ) -> Model:
        provider = await self._owned(session, provider_id, viewer)
        return await self._add_model(session, ctx, viewer, provider, remote)

    async def list(self, session: AsyncSession, viewer: Identity) -> list[ProviderRead]:
        return await self._reads(session, await repository.list_owned(session, viewer.user_id))

    async def get(
        self, session: AsyncSession, provider_id: uuid.UUID, viewer: Identity
    ) -> ProviderRead:
        return await self._read(session, await self._owned(session, provider_id, viewer))

    async def update(
        self,
        session: AsyncSession,
        ctx: HubContext,
        provider_id: uuid.UUID,
        viewer: Identity,
        data: ProviderUpdate,
    ) -> ProviderRead:
        provider = await self._owned(session, provider_id, viewer)
        changes = data.model_dump(exclude_unset=True)
        if changes.get("name"):
            provider.name = changes["name"]
        if changes.get("base_url"):
            provider.base_url = await check_outbound_url(
                changes["base_url"], allow=ctx.settings.outbound_allow
            )
        if "api_key" in changes:
            key = changes["api_key"]
            provider.api_key_encrypted = ctx.secrets.encrypt(key) if key else None
        await repository.save(session, provider)
        return await self._read(session, provider)

    async def delete(self, session: AsyncSession, provider_id: uuid.UUID, viewer: Identity) -> None:
        provider = await self._owned(session, provider_id, viewer)
        await repository.delete_provider(session, provider)

    async def endpoint(
        self, session: AsyncSession, ctx: HubContext, model: Model, *, with_key: bool
    ) -> RemoteEndpoint | None:
        """Where a remote model is served; the provider's key decrypted only `with_key` (for
        the one caller that calls the provider itself)."""
        if model.source != ModelSource.REMOTE or model.provider_id is None:
            return None
        provider = await repository.get_provider(session, model.provider_id)
        if provider is None:
            return None
        api_key = None
        if with_key and provider.api_key_encrypted:
            api_key = ctx.secrets.decrypt(provider.api_key_encrypted)
        return RemoteEndpoint(
            provider_id=provider.id,
            base_url=provider.base_url,
            api_key=api_key,
            remote_model=model.remote_model or "",
            context_length=model.context_length,
        )

    async def test_connection(
        self, session: AsyncSession, ctx: HubContext, provider_id: uuid.UUID, viewer: Identity
    ) -> ConnectionTest:
        provider = await self._owned(session, provider_id, viewer)
        # Checked again now and pinned: the name may resolve elsewhere than when it was
        # registered, or than a moment ago.
        pinned = await pin_outbound_url(provider.base_url, allow=ctx.settings.outbound_allow)
        headers = dict(pinned.headers)
        if provider.api_key_encrypted:
            headers["Authorization"] = f"Bearer {ctx.secrets.decrypt(provider.api_key_encrypted)}"
        try:
            async with httpx.AsyncClient(
                timeout=ctx.settings.provider_timeout_seconds,
                follow_redirects=False,
                trust_env=False,
            ) as client:
                response = await client.get(
                    pinned.join("models"), headers=headers, extensions=pinned.extensions
                )
        except httpx.TimeoutException:
            return ConnectionTest(ok=False, error="The provider did not answer in time.")
        except httpx.HTTPError as exc:
            return ConnectionTest(ok=False, error=f"Could not reach the provider: {exc}.")
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200:
            message = None
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                message = body["error"].get("message")
            return ConnectionTest(
                ok=False,
                status_code=response.status_code,
                error=message or f"The provider answered HTTP {response.status_code}.",
                details=body if isinstance(body, dict) else None,
            )
        models = [
            str(item.get("id"))
            for item in (body.get("data", []) if isinstance(body, dict) else [])
            if isinstance(item, dict) and item.get("id")
        ]
        return ConnectionTest(ok=True, models=models, status_code=200)


provider_service = ProviderService()
