"""Prompt templates: the built-in ones (everyone reads them) and each user's own.

A user's templates are theirs alone (others get 404); built-in templates are read-only (403
on a change). Every template declares its variables, checked against its placeholders when it
is saved; rendering checks the values given against them (422 naming missing or unknown ones)
and renders in the sandbox of `engine.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from services.inference.config import InferenceSettings
from services.inference.models import PromptTemplate
from services.inference.prompt_templates import engine, repository
from services.inference.prompt_templates.builtin import (
    BUILTIN_BY_ID,
    BUILTIN_TEMPLATES,
    BuiltinTemplate,
)
from services.inference.prompt_templates.engine import TemplateLimits
from services.inference.prompt_templates.schemas import (
    TemplateCreate,
    TemplatePage,
    TemplateRead,
    TemplateUpdate,
)
from shared.auth.identity import Identity
from shared.errors import Conflict, Forbidden, NotFound


class PromptTemplateNotFound(NotFound):
    code = "prompt_template_not_found"


class BuiltinTemplateReadOnly(Forbidden):
    code = "builtin_template_read_only"


class TemplateNameTaken(Conflict):
    code = "template_name_taken"


class TemplateLimitReached(Conflict):
    code = "template_limit_reached"


def limits_of(settings: InferenceSettings) -> TemplateLimits:
    return TemplateLimits(
        body_chars=settings.prompt_template_max_chars,
        variable_chars=settings.prompt_variable_max_chars,
        rendered_chars=settings.prompt_rendered_max_chars,
        max_variables=settings.prompt_template_max_variables,
    )


def _default(name: str) -> int:
    value = InferenceSettings.model_fields[name].default
    assert isinstance(value, int)
    return value


# For callers without the settings at hand (the conversation services): the setting defaults.
DEFAULT_LIMITS = TemplateLimits(
    body_chars=_default("prompt_template_max_chars"),
    variable_chars=_default("prompt_variable_max_chars"),
    rendered_chars=_default("prompt_rendered_max_chars"),
    max_variables=_default("prompt_template_max_variables"),
)


def _read(template: PromptTemplate | BuiltinTemplate) -> TemplateRead:
    if isinstance(template, BuiltinTemplate):
        return TemplateRead(
            id=template.id,
            name=template.name,
            description=template.description,
            body=template.body,
            variables=list(template.variables),
            builtin=True,
            owner_id=None,
            created_at=None,
            updated_at=None,
        )
    return TemplateRead(
        id=template.id,
        name=template.name,
        description=template.description,
        body=template.body,
        variables=list(template.variables),
        builtin=False,
        owner_id=template.owner_id,
        created_at=template.created_at,
        updated_at=template.updated_at,
    )


class PromptTemplateService:
    async def visible(
        self,
        session: AsyncSession,
        caller: Identity,
        template_id: uuid.UUID,
        *,
        also_owned_by: uuid.UUID | None = None,
    ) -> PromptTemplate | BuiltinTemplate:
        """A built-in template, or one of the caller's own (or `also_owned_by`'s: the owner of
        a conversation the caller writes to); 404 otherwise."""
        builtin = BUILTIN_BY_ID.get(template_id)
        if builtin is not None:
            return builtin
        template = await repository.get(session, template_id)
        if template is None or template.owner_id not in {caller.user_id, also_owned_by}:
            raise PromptTemplateNotFound("No such prompt template.")
        return template

    async def _own(
        self, session: AsyncSession, caller: Identity, template_id: uuid.UUID
    ) -> PromptTemplate:
        template = await self.visible(session, caller, template_id)
        if isinstance(template, BuiltinTemplate):
            raise BuiltinTemplateReadOnly(
                f"'{template.name}' is a built-in template and cannot be changed; save a copy "
                "as your own template instead."
            )
        return template

    async def page(
        self, session: AsyncSession, caller: Identity, *, cursor: str | None, limit: int
    ) -> TemplatePage:
        rows, next_cursor = await repository.page_owned(
            session, caller.user_id, cursor=cursor, limit=limit
        )
        return TemplatePage(
            builtin=[_read(t) for t in BUILTIN_TEMPLATES],
            items=[_read(t) for t in rows],
            next_cursor=next_cursor,
        )

    async def get(
        self, session: AsyncSession, caller: Identity, template_id: uuid.UUID
    ) -> TemplateRead:
        return _read(await self.visible(session, caller, template_id))

    async def create(
        self,
        session: AsyncSession,
        caller: Identity,
        body: TemplateCreate,
        limits: TemplateLimits,
        max_templates: int,
    ) -> TemplateRead:
        variables = (
            list(body.variables) if body.variables is not None else engine.placeholders(body.body)
        )
        engine.check_template(body.body, variables, limits)
        if await repository.count_owned(session, caller.user_id) >= max_templates:
            raise TemplateLimitReached(
                f"You have {max_templates} prompt templates, the most allowed; delete one first."
            )
        await self._check_name(session, caller, body.name)
        template = PromptTemplate(
            owner_id=caller.user_id,
            name=body.name,
            description=body.description,
            body=body.body,
            variables=variables,
        )
        session.add(template)
        await session.flush()
        return _read(template)

    async def update(
        self,
        session: AsyncSession,
        caller: Identity,
        template_id: uuid.UUID,
        body: TemplateUpdate,
        limits: TemplateLimits,
    ) -> TemplateRead:
        template = await self._own(session, caller, template_id)
        changes = body.model_dump(exclude_unset=True)
        new_body = changes.get("body", template.body)
        new_variables = changes.get("variables", template.variables)
        if "body" in changes or "variables" in changes:
            engine.check_template(new_body, list(new_variables), limits)
        if "name" in changes and changes["name"] != template.name:
            await self._check_name(session, caller, changes["name"], besides=template.id)
        for field, value in changes.items():
            setattr(template, field, list(value) if field == "variables" else value)
        await session.flush()
        return _read(template)

    async def delete(self, session: AsyncSession, caller: Identity, template_id: uuid.UUID) -> None:
        template = await self._own(session, caller, template_id)
        await session.delete(template)
        await session.flush()

    async def render(
        self,
        session: AsyncSession,
        caller: Identity,
        template_id: uuid.UUID,
        variables: Mapping[str, str],
        *,
        limits: TemplateLimits = DEFAULT_LIMITS,
        also_owned_by: uuid.UUID | None = None,
    ) -> str:
        """The template rendered with `variables`: 404 for a template the caller may not see
        (`also_owned_by`: a conversation owner whose templates the caller may use too), 422
        naming missing or unknown variables."""
        template = await self.visible(session, caller, template_id, also_owned_by=also_owned_by)
        return engine.render(template.body, list(template.variables), variables, limits)

    async def _check_name(
        self,
        session: AsyncSession,
        caller: Identity,
        name: str,
        *,
        besides: uuid.UUID | None = None,
    ) -> None:
        if await repository.name_taken(session, caller.user_id, name, besides=besides):
            raise TemplateNameTaken(f"You already have a prompt template named '{name}'.")


prompt_template_service = PromptTemplateService()
