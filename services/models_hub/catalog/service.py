"""Creating, finding, changing and deleting models; likes and access grants."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.models_hub.catalog import repository
from services.models_hub.catalog.access import can_manage, can_use
from services.models_hub.catalog.schemas import (
    GrantCreate,
    GrantRead,
    LikeState,
    ModelCreate,
    ModelRead,
    ModelSort,
    ModelStats,
    ModelUpdate,
    Owner,
    VersionSummary,
)
from services.models_hub.deps import HubContext
from services.models_hub.models import (
    Model,
    ModelAccessGrant,
    ModelLike,
    ModelSource,
    ModelStatus,
    ModelVersion,
    VersionStatus,
)
from shared.auth.identity import Identity
from shared.db import after_commit, utcnow
from shared.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    UnprocessableEntity,
)
from shared.events import record_event
from shared.pagination import Page


def _uploaded_context() -> UnprocessableEntity:
    return UnprocessableEntity(
        "context_length is for models served by an external provider; an uploaded model's "
        "context comes from its weights.",
        code="context_length_not_settable",
    )


class ModelNotFound(NotFound):
    code = "model_not_found"


class SlugTaken(Conflict):
    code = "slug_taken"


def model_prefix(model_id: uuid.UUID) -> str:
    return f"models/{model_id}"


def model_ref(model: Model) -> str:
    """`<owner>/<slug>`: the model's public name."""
    return f"{model.owner_username}/{model.slug}"


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")[:64]
    return slug or "model"


def _model_read(model: Model, active: ModelVersion | None, liked: bool | None) -> ModelRead:
    return ModelRead(
        id=model.id,
        ref=model_ref(model),
        owner=Owner(id=model.owner_id, username=model.owner_username),
        slug=model.slug,
        name=model.name,
        description=model.description,
        card=model.card,
        tags=model.tags,
        license=model.license,
        visibility=model.visibility,
        source=model.source,
        status=model.status,
        default_params=model.default_params,
        system_prompt=model.system_prompt,
        active_version=(
            VersionSummary(id=active.id, number=active.number, status=active.status)
            if active
            else None
        ),
        provider_id=model.provider_id,
        remote_model=model.remote_model,
        context_length=model.context_length,
        daily_token_cap=model.daily_token_cap,
        user_daily_token_cap=model.user_daily_token_cap,
        likes_count=model.likes_count,
        liked_by_me=liked,
        stats=ModelStats(
            usage_count=model.usage_count,
            tokens_generated=model.tokens_generated,
            avg_latency_ms=model.avg_latency_ms,
            p95_latency_ms=model.p95_latency_ms,
            last_used_at=model.last_used_at,
        ),
        created_at=model.created_at,
        updated_at=model.updated_at,
    )


class CatalogService:
    # -- reading --------------------------------------------------------------------------
    async def reads(
        self, session: AsyncSession, models: Sequence[Model], viewer: Identity | None
    ) -> list[ModelRead]:
        """Models as the viewer sees them: two statements however many there are (their
        active versions, and which of them the viewer likes)."""
        active = await repository.versions_by_id(
            session, [m.active_version_id for m in models if m.active_version_id is not None]
        )
        liked = await repository.liked_set(session, [m.id for m in models], viewer)
        return [
            _model_read(
                model,
                active.get(model.active_version_id) if model.active_version_id else None,
                (model.id in liked) if viewer is not None else None,
            )
            for model in models
        ]

    async def read(self, session: AsyncSession, model: Model, viewer: Identity | None) -> ModelRead:
        (read,) = await self.reads(session, [model], viewer)
        return read

    async def visible(
        self, session: AsyncSession, model_id: uuid.UUID, viewer: Identity | None
    ) -> Model:
        """A model the viewer may use; a private model of someone else does not exist."""
        model = await repository.get_model(session, model_id)
        if model is None or not can_use(
            model, viewer, await repository.get_grant(session, model_id, viewer)
        ):
            raise ModelNotFound("No such model.")
        return model

    async def visible_by_ref(
        self, session: AsyncSession, owner: str, slug: str, viewer: Identity | None
    ) -> Model:
        model = await repository.get_by_ref(session, owner, slug)
        if model is None:
            raise ModelNotFound("No such model.")
        return await self.visible(session, model.id, viewer)

    async def managed(self, session: AsyncSession, model_id: uuid.UUID, viewer: Identity) -> Model:
        """A model the viewer may change: 404 if they cannot see it, 403 if they only use it."""
        model = await self.visible(session, model_id, viewer)
        if not can_manage(model, viewer, await repository.get_grant(session, model_id, viewer)):
            raise Forbidden(
                "Only the model's owner or managers may do this.", code="not_model_manager"
            )
        return model

    async def page(
        self,
        session: AsyncSession,
        viewer: Identity | None,
        *,
        q: str | None,
        owner: str | None,
        tag: str | None,
        status: ModelStatus | None,
        source: ModelSource | None,
        sort: ModelSort,
        cursor: str | None,
        limit: int,
    ) -> Page[ModelRead]:
        query = repository.list_query(
            viewer, q=q, owner=owner, tag=tag, status=status, source=source
        )
        if sort == ModelSort.TRENDING:
            rows, next_cursor = await repository.trending(
                session, query, cursor=cursor, limit=limit
            )
        else:
            rows, next_cursor = await repository.keyset(
                session, query, sort, cursor=cursor, limit=limit
            )
        items = await self.reads(session, rows, viewer)
        return Page[ModelRead](items=items, next_cursor=next_cursor)

    async def refresh_status(self, session: AsyncSession, model: Model) -> None:
        """Derive the model's status from its versions (a remote model is always ready)."""
        if model.source == ModelSource.REMOTE or model.active_version_id is not None:
            model.status = ModelStatus.READY
            return
        statuses = await repository.version_statuses(session, model.id)
        if statuses & {VersionStatus.UPLOADING, VersionStatus.VALIDATING}:
            model.status = ModelStatus.VALIDATING
        elif VersionStatus.FAILED in statuses:
            model.status = ModelStatus.FAILED
        else:
            model.status = ModelStatus.EMPTY

    # -- creating and changing ------------------------------------------------------------
    async def ensure_can_create(
        self, session: AsyncSession, ctx: HubContext, viewer: Identity
    ) -> None:
        user = await ctx.accounts.user(viewer.user_id)
        if not (user.is_model_developer or viewer.is_admin):
            raise Forbidden(
                "Only model developers may create models: set is_model_developer on your "
                "profile (PATCH /api/v1/users/me).",
                code="not_model_developer",
            )
        limit = ctx.settings.max_models_per_user
        if await repository.count_models(session, viewer.user_id) >= limit:
            raise TooManyRequests(
                f"You have {limit} models, the most allowed; delete one first.",
                retry_after=3600,
                code="model_limit",
            )

    async def create(
        self,
        session: AsyncSession,
        ctx: HubContext,
        viewer: Identity,
        data: ModelCreate,
        *,
        source: ModelSource = ModelSource.UPLOAD,
        provider_id: uuid.UUID | None = None,
        remote_model: str | None = None,
        context_length: int | None = None,
    ) -> Model:
        await self.ensure_can_create(session, ctx, viewer)
        fields = data.model_dump(exclude_unset=True, exclude={"name", "slug", "default_params"})
        model = Model(
            owner_id=viewer.user_id,
            owner_username=viewer.username,
            name=data.name,
            slug=data.slug or slugify(data.name),
            default_params=(
                data.default_params.model_dump(exclude_none=True) if data.default_params else {}
            ),
            source=source,
            status=ModelStatus.READY if source == ModelSource.REMOTE else ModelStatus.EMPTY,
            provider_id=provider_id,
            remote_model=remote_model,
            context_length=context_length,
            **{k: v for k, v in fields.items() if v is not None},
        )
        try:
            await repository.add_model(session, model)
        except IntegrityError as exc:
            raise SlugTaken(
                f"You already have a model with the slug '{model.slug}'; pick another slug."
            ) from exc
        record_event(
            session,
            "model.created",
            {
                "model_id": str(model.id),
                "owner_id": str(model.owner_id),
                "ref": model_ref(model),
                "visibility": model.visibility,
            },
            source="models_hub",
        )
        return model

    async def update(
        self, session: AsyncSession, model_id: uuid.UUID, viewer: Identity, data: ModelUpdate
    ) -> Model:
        model = await self.managed(session, model_id, viewer)
        changes: dict[str, Any] = data.model_dump(exclude_unset=True)
        if "name" in changes and changes["name"] is None:
            raise BadRequest("name cannot be null.")
        if changes.get("context_length") is not None and model.source != ModelSource.REMOTE:
            raise _uploaded_context()
        for field, value in changes.items():
            if field == "default_params":
                value = (
                    data.default_params.model_dump(exclude_none=True) if data.default_params else {}
                )
            elif field in {"description", "card"} and value is None:
                value = ""
            elif field == "tags" and value is None:
                value = []
            elif field == "visibility" and value is None:
                raise BadRequest("visibility cannot be null.")
            setattr(model, field, value)
        await session.flush()
        return model

    async def delete(
        self, session: AsyncSession, ctx: HubContext, model_id: uuid.UUID, viewer: Identity
    ) -> None:
        model = await self.managed(session, model_id, viewer)
        if model.owner_id != viewer.user_id and not viewer.is_admin:
            raise Forbidden(
                "Only the owner or an admin may delete a model.", code="not_model_owner"
            )
        await repository.delete_model(session, model)
        record_event(session, "model.deleted", {"model_id": str(model.id)}, source="models_hub")
        prefix = model_prefix(model.id)

        async def _delete_files() -> None:
            await ctx.storage.delete_prefix(prefix)

        after_commit(session, _delete_files)

    async def ensure_upload_allowed_today(
        self, session: AsyncSession, ctx: HubContext, viewer: Identity
    ) -> None:
        """429 once the viewer has uploaded the day's most versions (over the last 24 h)."""
        since = utcnow() - timedelta(days=1)
        used = await repository.versions_since(session, viewer.user_id, since)
        if used >= ctx.settings.max_uploads_per_day:
            raise TooManyRequests(
                f"You uploaded {used} versions in the last 24 hours, the most allowed.",
                retry_after=3600,
                code="upload_limit",
            )

    # -- likes ----------------------------------------------------------------------------
    async def set_like(
        self, session: AsyncSession, model_id: uuid.UUID, viewer: Identity, *, like: bool
    ) -> LikeState:
        model = await self.visible(session, model_id, viewer)
        existing = await repository.get_like(session, model.id, viewer.user_id)
        if like and existing is None:
            repository.add_like(session, ModelLike(model_id=model.id, user_id=viewer.user_id))
            model.likes_count += 1
            record_event(
                session,
                "model.liked",
                {
                    "model_id": str(model.id),
                    "owner_id": str(model.owner_id),
                    "user_id": str(viewer.user_id),
                    "username": viewer.username,
                },
                source="models_hub",
            )
        elif not like and existing is not None:
            await repository.delete_like(session, existing)
            model.likes_count -= 1
        await session.flush()
        return LikeState(liked=like, likes_count=model.likes_count)

    # -- grants ---------------------------------------------------------------------------
    async def grants(
        self, session: AsyncSession, model_id: uuid.UUID, viewer: Identity
    ) -> list[GrantRead]:
        model = await self.managed(session, model_id, viewer)
        return [
            GrantRead.model_validate(g) for g in await repository.list_grants(session, model.id)
        ]

    async def grant(
        self,
        session: AsyncSession,
        ctx: HubContext,
        model_id: uuid.UUID,
        viewer: Identity,
        data: GrantCreate,
    ) -> GrantRead:
        model = await self.managed(session, model_id, viewer)
        user = await ctx.accounts.user_by_name(data.username)
        if user.id == model.owner_id:
            raise Conflict("The owner already has full access.", code="grant_to_owner")
        grant = await repository.get_user_grant(session, model.id, user.id)
        if grant is None:
            grant = await repository.add_grant(
                session,
                ModelAccessGrant(
                    model_id=model.id, user_id=user.id, username=user.username, level=data.level
                ),
            )
        else:
            grant.level = data.level
            await session.flush()
        return GrantRead.model_validate(grant)

    async def revoke_grant(
        self, session: AsyncSession, model_id: uuid.UUID, viewer: Identity, username: str
    ) -> None:
        model = await self.managed(session, model_id, viewer)
        await repository.delete_grant(session, model.id, username)


catalog_service = CatalogService()
