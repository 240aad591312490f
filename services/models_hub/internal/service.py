"""What other services learn about a model: the access check and how to serve it.

It answers 404 exactly when the public API would, for the identity the caller forwards. A
remote model's decrypted provider key leaves the hub only for the inference service, which
calls the provider; every other caller learns the endpoint without its key.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.models_hub.catalog import repository as catalog_repository
from services.models_hub.catalog.access import access_level
from services.models_hub.catalog.service import ModelNotFound, model_ref
from services.models_hub.deps import HubContext
from services.models_hub.models import Model, VersionStatus
from services.models_hub.providers.service import provider_service
from services.models_hub.versions import repository as versions_repository
from shared.auth.identity import Identity
from shared.auth.service_credentials import ServiceName
from shared.errors import Unauthorized
from shared.models_client import ModelAccess, ServableVersion, UsableModel

# The only caller that gets a provider's key: it makes the provider calls.
KEY_HOLDER = ServiceName.INFERENCE


class InternalService:
    async def by_id(
        self,
        session: AsyncSession,
        ctx: HubContext,
        model_id: uuid.UUID,
        viewer: Identity | None,
        caller: ServiceName,
        version: int | None = None,
    ) -> ModelAccess:
        model = await catalog_repository.get_model(session, model_id)
        return await self._access(session, ctx, model, viewer, caller, version)

    async def by_ref(
        self,
        session: AsyncSession,
        ctx: HubContext,
        owner: str,
        slug: str,
        viewer: Identity | None,
        caller: ServiceName,
        version: int | None = None,
    ) -> ModelAccess:
        model = await catalog_repository.get_by_ref(session, owner, slug)
        return await self._access(session, ctx, model, viewer, caller, version)

    async def _access(
        self,
        session: AsyncSession,
        ctx: HubContext,
        model: Model | None,
        viewer: Identity | None,
        caller: ServiceName,
        number: int | None,
    ) -> ModelAccess:
        """`number`: serve that ready version instead of the active one (404 if there is none:
        anyone who may use a model may use its ready versions, as with a repository's
        revisions)."""
        if model is None:
            raise ModelNotFound("No such model.")
        grant = await catalog_repository.get_grant(session, model.id, viewer)
        level = access_level(model, viewer, grant)
        if level is None:
            raise ModelNotFound("No such model.")
        if number is not None:
            version = await versions_repository.get_by_number(session, model.id, number)
            if version is None or version.status != VersionStatus.READY:
                raise ModelNotFound(f"{model_ref(model)} has no ready version {number}.")
        elif model.active_version_id:
            version = await versions_repository.get_version(session, model.active_version_id)
        else:
            version = None
        remote = await provider_service.endpoint(session, ctx, model, with_key=caller == KEY_HOLDER)
        return ModelAccess(
            id=model.id,
            ref=model_ref(model) if number is None else f"{model_ref(model)}@{number}",
            owner_id=model.owner_id,
            visibility=model.visibility,
            source=model.source,
            status=model.status,
            access=level,
            default_params=model.default_params,
            system_prompt=model.system_prompt,
            active_version=ServableVersion(
                id=version.id,
                number=version.number,
                storage_prefix=version.servable_prefix or "",
                files=version.servable_files,
                details=version.details,
            )
            if version is not None and version.status == VersionStatus.READY
            else None,
            remote=remote,
            daily_token_cap=model.daily_token_cap,
            user_daily_token_cap=model.user_daily_token_cap,
        )

    async def open_ids(self, session: AsyncSession, ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """Those of `ids` whose models anyone may use: what `by_id` without a viewer answers
        200 for."""
        return await catalog_repository.open_model_ids(session, ids)

    async def usable(self, session: AsyncSession, viewer: Identity | None) -> list[UsableModel]:
        """Ready models the caller may use and should see listed (for GET /v1/models): public
        ones, their own, and private ones granted to them."""
        if viewer is None:
            raise Unauthorized("A caller identity is required.")
        return [
            UsableModel(
                id=m.id,
                ref=model_ref(m),
                owner=m.owner_username,
                source=m.source,
                created_at=m.created_at,
            )
            for m in await catalog_repository.usable_models(session, viewer)
        ]


internal_service = InternalService()
