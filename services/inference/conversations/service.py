"""Conversations: create, list and search, read with the message tree, change, share, delete
(with an undo window, then a purge), export.

Who may do what: the owner everything; participants the owner added read, or read and write
(send messages, choose the current branch); a read-only participant who tries to write gets
403, and so does a participant trying what only the owner may (rename, settings, model, sharing,
delete). Everyone else, and everyone once it is deleted, gets 404: a conversation's existence is
private.

Titles: a conversation created without one has the empty title until its first user message,
when `advance` (called by the messages domain as it stores that message) sets the message's
opening words (`title_from`). A given title is never replaced: an empty title is how a derived
one is told from a given one.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.inference.activity.service import activity_service
from services.inference.attachments.service import attachment_service
from services.inference.config import InferenceSettings
from services.inference.conversations import export, repository
from services.inference.conversations.schemas import (
    ConversationCreate,
    ConversationDeleted,
    ConversationExport,
    ConversationList,
    ConversationRead,
    ConversationSummary,
    ConversationUpdate,
    DayGroup,
    ExportFormat,
    MessageView,
    MyFeedback,
    ParticipantCreate,
    ParticipantRead,
    ViewerRole,
)
from services.inference.deps import InferenceContext
from services.inference.models import (
    ActivityAction,
    Conversation,
    ConversationParticipant,
    Message,
    MessageFeedback,
    ParticipantRole,
    UsageSource,
)
from services.inference.prompt_templates.service import prompt_template_service
from shared.auth.identity import Identity
from shared.db import session_scope, utcnow
from shared.errors import Conflict, FieldError, Forbidden, NotFound, UnprocessableEntity
from shared.models_client import ModelAccess, ModelNotFound
from shared.storage import Storage

TITLE_WORDS_MAX = 60  # characters of a derived title
_SPACE = re.compile(r"\s+")


class ConversationNotFound(NotFound):
    code = "conversation_not_found"


class MessageNotFound(NotFound):
    code = "message_not_found"


class ParticipantNotFound(NotFound):
    code = "participant_not_found"


class OwnerOnly(Forbidden):
    code = "owner_only"


class ModelNotReady(Conflict):
    code = "model_not_ready"


class RestoreWindowPassed(Conflict):
    code = "restore_window_passed"


class MaxTokensTooLarge(UnprocessableEntity):
    code = "max_tokens_too_large"


def title_from(text: str) -> str:
    """A title from a message: its opening words on one line, cut at a word near 60 characters."""
    flat = _SPACE.sub(" ", text).strip()
    if not flat:
        return "Untitled conversation"
    if len(flat) <= TITLE_WORDS_MAX:
        return flat
    cut = flat[:TITLE_WORDS_MAX]
    if " " in cut[TITLE_WORDS_MAX // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,.;:-") + "…"


def max_tokens_limit(model: ModelAccess, settings: InferenceSettings) -> int:
    """The most tokens one answer of this model may ask for: the service's limit, and less
    than the model's context length where its validation measured one."""
    limit = settings.max_tokens_limit
    if model.source != UsageSource.REMOTE and model.active_version is not None:
        context_length = model.active_version.details.get("context_length")
        if isinstance(context_length, int) and context_length > 1:
            limit = min(limit, context_length - 1)
    return limit


def parents_first(messages: list[Message]) -> list[Message]:
    """`messages` (oldest first) reordered, where needed, so that each comes after its parent:
    a turn and its answer stored in one transaction share a timestamp."""
    ids = {m.id for m in messages}
    placed: set[uuid.UUID] = set()
    waiting: dict[uuid.UUID, list[Message]] = defaultdict(list)
    ordered: list[Message] = []

    def place(message: Message) -> None:
        ordered.append(message)
        placed.add(message.id)
        for child in waiting.pop(message.id, []):
            place(child)

    for message in messages:
        parent = message.parent_id
        if parent is None or parent in placed or parent not in ids:
            place(message)
        else:
            waiting[parent].append(message)
    return ordered


def current_path(messages: list[Message], leaf_id: uuid.UUID | None) -> list[uuid.UUID]:
    """Message ids from the root down to `leaf_id` (empty without one)."""
    parents = {m.id: m.parent_id for m in messages}
    path: list[uuid.UUID] = []
    node = leaf_id
    while node is not None and node in parents and len(path) <= len(parents):
        path.append(node)
        node = parents[node]
    return path[::-1]


def newest_leaf(messages: list[Message], start: uuid.UUID) -> uuid.UUID:
    """Down from `start`, always to the newest child, until a message with none."""
    children: dict[uuid.UUID, list[Message]] = defaultdict(list)
    for message in messages:  # oldest first, so each list ends with the newest child
        if message.parent_id is not None:
            children[message.parent_id].append(message)
    node = start
    while children.get(node):
        node = children[node][-1].id
    return node


class ConversationService:
    # ---- access ---------------------------------------------------------------------------------

    async def accessible(
        self,
        session: AsyncSession,
        caller: Identity,
        conversation_id: uuid.UUID,
        *,
        write: bool = False,
        for_update: bool = False,
    ) -> Conversation:
        """The conversation if `caller` may read it (or, with `write`, send messages to it)."""
        conversation = await repository.get_conversation(
            session, conversation_id, for_update=for_update
        )
        return await self._check_access(session, caller, conversation, write=write)

    async def for_turn(
        self, session: AsyncSession, caller: Identity, conversation_id: uuid.UUID
    ) -> tuple[Conversation, bool]:
        """The conversation, locked, if `caller` may send messages to it; and whether it has
        attachments."""
        found = await repository.get_for_turn(session, conversation_id)
        conversation, has_attachments = found or (None, False)
        return await self._check_access(session, caller, conversation, write=True), has_attachments

    async def _check_access(
        self,
        session: AsyncSession,
        caller: Identity,
        conversation: Conversation | None,
        *,
        write: bool,
    ) -> Conversation:
        if conversation is None or conversation.deleted_at is not None:
            raise ConversationNotFound("No such conversation.")
        if conversation.owner_id == caller.user_id:
            return conversation
        role = await repository.participant_role(session, conversation.id, caller.user_id)
        if role is None:
            raise ConversationNotFound("No such conversation.")
        if write and role != ParticipantRole.WRITE:
            raise Forbidden(
                "You may read this conversation but not write to it; ask its owner for "
                "read-write access.",
                code="read_only_participant",
            )
        return conversation

    async def owned(
        self, session: AsyncSession, caller: Identity, conversation_id: uuid.UUID
    ) -> Conversation:
        """The conversation, locked, if `caller` owns it (participants: 403; others: 404)."""
        conversation = await self.accessible(session, caller, conversation_id, for_update=True)
        if conversation.owner_id != caller.user_id:
            raise OwnerOnly("Only the conversation's owner may do this.")
        return conversation

    async def role_of(
        self, session: AsyncSession, caller: Identity, conversation: Conversation
    ) -> ViewerRole:
        if conversation.owner_id == caller.user_id:
            return ViewerRole.OWNER
        role = await repository.participant_role(session, conversation.id, caller.user_id)
        return ViewerRole(role or ViewerRole.READ)

    # ---- titles (called by the messages domain) -------------------------------------------------

    def title_from(self, text: str) -> str:
        return title_from(text)

    async def advance(
        self,
        session: AsyncSession,
        conversation: Conversation,
        current_message_id: uuid.UUID,
        user_text: str | None = None,
    ) -> None:
        """Move the current branch to a new message; `user_text`, the turn's user message,
        titles a conversation that has no title yet."""
        title = conversation.title
        if not title and user_text is not None:
            title = title_from(user_text)
        await repository.advance(session, conversation, current_message_id, title)

    # ---- models and parameters ------------------------------------------------------------------

    async def usable_model(self, ctx: InferenceContext, caller: Identity, ref: str) -> ModelAccess:
        """The model if the caller may use it and it can answer now (404 / 409 otherwise)."""
        model = await ctx.models.access(ref, caller)
        if model.source != UsageSource.REMOTE and model.active_version is None:
            raise ModelNotReady(
                f"{model.ref} has no ready version yet (status: {model.status}); try again once "
                "validation has finished."
            )
        return model

    def check_parameters(
        self, parameters: dict[str, Any], model: ModelAccess | None, settings: InferenceSettings
    ) -> None:
        limit = settings.max_tokens_limit if model is None else max_tokens_limit(model, settings)
        max_tokens = parameters.get("max_tokens")
        if max_tokens is not None and max_tokens > limit:
            message = f"must be at most {limit}" + (f" for {model.ref}" if model else "")
            raise MaxTokensTooLarge(
                f"Invalid request. parameters.max_tokens: {message}.",
                fields=[FieldError(field="parameters.max_tokens", message=message)],
            )

    async def _check_template(
        self, session: AsyncSession, caller: Identity, template_id: uuid.UUID
    ) -> None:
        await prompt_template_service.visible(session, caller, template_id)

    # ---- create, read, list ---------------------------------------------------------------------

    async def create(
        self,
        session: AsyncSession,
        ctx: InferenceContext,
        caller: Identity,
        data: ConversationCreate,
    ) -> Conversation:
        model = await self.usable_model(ctx, caller, data.model)
        parameters = data.parameters.stored()
        self.check_parameters(parameters, model, ctx.settings)
        if data.template_id is not None:
            await self._check_template(session, caller, data.template_id)
        conversation = await repository.add_conversation(
            session,
            Conversation(
                owner_id=caller.user_id,
                title=data.title or "",
                model_id=model.id,
                model_ref=model.ref,
                system_prompt=data.system_prompt,
                parameters=parameters,
                template_id=data.template_id,
            ),
        )
        await activity_service.record(
            session,
            caller.user_id,
            ActivityAction.CONVERSATION_CREATED,
            model_id=model.id,
            conversation_id=conversation.id,
            details={"model": model.ref, "title": conversation.title},
        )
        return conversation

    def _summary(self, conversation: Conversation, role: ViewerRole) -> dict[str, Any]:
        return {
            "id": conversation.id,
            "title": conversation.title,
            "owner_id": conversation.owner_id,
            "model_id": conversation.model_id,
            "model_ref": conversation.model_ref,
            "role": role,
            "created_at": conversation.created_at,
            "updated_at": conversation.updated_at,
        }

    async def read(
        self, session: AsyncSession, caller: Identity, conversation: Conversation
    ) -> ConversationRead:
        messages = parents_first(await repository.messages_of(session, conversation.id))
        ratings = await repository.feedback_of(session, conversation.id, caller.user_id)
        return ConversationRead(
            **self._summary(conversation, await self.role_of(session, caller, conversation)),
            system_prompt=conversation.system_prompt,
            parameters=conversation.parameters,
            template_id=conversation.template_id,
            current_message_id=conversation.current_message_id,
            current_path=current_path(messages, conversation.current_message_id),
            messages=[_message_view(m, ratings.get(m.id)) for m in messages],
        )

    async def page(
        self,
        session: AsyncSession,
        caller: Identity,
        *,
        model_id: uuid.UUID | None,
        q: str | None,
        cursor: str | None,
        limit: int,
    ) -> ConversationList:
        rows, next_cursor = await repository.page_visible(
            session,
            caller.user_id,
            model_id=model_id,
            q=q.strip() or None if q is not None else None,
            cursor=cursor,
            limit=limit,
        )
        shared = [c.id for c in rows if c.owner_id != caller.user_id]
        roles = await repository.roles_of(session, caller.user_id, shared)
        groups: list[DayGroup] = []
        for conversation in rows:
            role = (
                ViewerRole.OWNER
                if conversation.owner_id == caller.user_id
                else ViewerRole(roles.get(conversation.id, ViewerRole.READ))
            )
            item = ConversationSummary(**self._summary(conversation, role))
            day = conversation.updated_at.date()
            if not groups or groups[-1].day != day:
                groups.append(DayGroup(day=day, items=[]))
            groups[-1].items.append(item)
        return ConversationList(groups=groups, next_cursor=next_cursor)

    # ---- change ---------------------------------------------------------------------------------

    async def update(
        self,
        session: AsyncSession,
        ctx: InferenceContext,
        caller: Identity,
        conversation_id: uuid.UUID,
        data: ConversationUpdate,
    ) -> Conversation:
        conversation = await self.owned(session, caller, conversation_id)
        changes = data.model_dump(exclude_unset=True)
        switched_from: str | None = None
        model: ModelAccess | None = None
        if data.model is not None:
            model = await self.usable_model(ctx, caller, data.model)
            if model.id != conversation.model_id:
                switched_from = conversation.model_ref
            conversation.model_id, conversation.model_ref = model.id, model.ref
        if data.parameters is not None:
            conversation.parameters = data.parameters.stored()
        if model is not None:
            self.check_parameters(conversation.parameters, model, ctx.settings)
        elif "parameters" in changes:
            # Against the model later turns use; one since deleted refuses turns anyway.
            try:
                current = await ctx.models.access(conversation.model_ref, caller)
            except ModelNotFound:
                current = None
            self.check_parameters(conversation.parameters, current, ctx.settings)
        if "title" in changes:
            conversation.title = changes["title"]
        if "system_prompt" in changes:
            conversation.system_prompt = changes["system_prompt"]
        if "template_id" in changes:
            if data.template_id is not None:
                await self._check_template(session, caller, data.template_id)
            conversation.template_id = data.template_id
        await session.flush()
        await session.refresh(conversation)
        if switched_from is not None and model is not None:
            await activity_service.record(
                session,
                caller.user_id,
                ActivityAction.MODEL_SWITCHED,
                model_id=model.id,
                conversation_id=conversation.id,
                details={"from": switched_from, "to": model.ref},
            )
        return conversation

    async def set_current(
        self,
        session: AsyncSession,
        caller: Identity,
        conversation_id: uuid.UUID,
        message_id: uuid.UUID,
    ) -> Conversation:
        """Make the branch through `message_id` current (down to its newest leaf)."""
        conversation = await self.accessible(
            session, caller, conversation_id, write=True, for_update=True
        )
        if await repository.get_message(session, conversation.id, message_id) is None:
            raise MessageNotFound("No such message in this conversation.")
        messages = parents_first(await repository.messages_of(session, conversation.id))
        conversation.current_message_id = newest_leaf(messages, message_id)
        await session.flush()
        await session.refresh(conversation)
        return conversation

    # ---- delete, restore, purge -----------------------------------------------------------------

    async def delete(
        self,
        session: AsyncSession,
        settings: InferenceSettings,
        caller: Identity,
        conversation_id: uuid.UUID,
    ) -> ConversationDeleted:
        conversation = await self.owned(session, caller, conversation_id)
        now = utcnow()
        conversation.deleted_at = now
        await session.flush()
        await activity_service.record(
            session,
            caller.user_id,
            ActivityAction.CONVERSATION_DELETED,
            model_id=conversation.model_id,
            conversation_id=conversation.id,
            details={"title": conversation.title},
        )
        return ConversationDeleted(
            id=conversation.id,
            deleted_at=now,
            restorable_until=now + timedelta(seconds=settings.conversation_undo_seconds),
        )

    async def restore(
        self,
        session: AsyncSession,
        settings: InferenceSettings,
        caller: Identity,
        conversation_id: uuid.UUID,
    ) -> Conversation:
        """Undo a delete within the undo window (the owner only; a live one is left as is)."""
        conversation = await repository.get_conversation(session, conversation_id, for_update=True)
        if conversation is None or conversation.owner_id != caller.user_id:
            raise ConversationNotFound("No such conversation.")
        if conversation.deleted_at is None:
            return conversation
        window = timedelta(seconds=settings.conversation_undo_seconds)
        if conversation.deleted_at + window <= utcnow():
            raise RestoreWindowPassed(
                f"This conversation was deleted more than {settings.conversation_undo_seconds} "
                "seconds ago and can no longer be restored."
            )
        conversation.deleted_at = None
        await session.flush()
        await session.refresh(conversation)
        return conversation

    async def purge_expired(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        storage: Storage,
        undo_seconds: int,
        *,
        limit: int = 500,
    ) -> int:
        """Remove conversations deleted longer ago than the undo window: their attachments
        (originals in storage, then rows) first, then the conversation with its messages. One
        transaction each, so one failure leaves the others purged. Returns how many went."""
        purged = 0
        while purged < limit:
            async with session_scope(sessionmaker) as session:
                cutoff = utcnow() - timedelta(seconds=undo_seconds)
                ids = await repository.expired_ids(session, cutoff, 1)
                if not ids:
                    break
                await attachment_service.purge(session, storage, ids[0])
                await repository.delete_conversation(session, ids[0])
            purged += 1
        return purged

    # ---- export ---------------------------------------------------------------------------------

    async def export(
        self,
        session: AsyncSession,
        caller: Identity,
        conversation_id: uuid.UUID,
        format: ExportFormat,
    ) -> tuple[Conversation, ConversationExport | str]:
        """The conversation as JSON (everything) or Markdown (the current branch)."""
        conversation = await self.accessible(session, caller, conversation_id)
        messages = parents_first(await repository.messages_of(session, conversation.id))
        now = utcnow()
        document: ConversationExport | str
        if format is ExportFormat.JSON:
            participants = await repository.participants_of(session, conversation.id)
            document = export.to_json(conversation, participants, messages, now)
        else:
            by_id = {m.id: m for m in messages}
            path = current_path(messages, conversation.current_message_id)
            document = export.to_markdown(conversation, [by_id[i] for i in path], now)
        await activity_service.record(
            session,
            caller.user_id,
            ActivityAction.CONVERSATION_EXPORTED,
            model_id=conversation.model_id,
            conversation_id=conversation.id,
            details={"format": str(format)},
        )
        return conversation, document

    # ---- sharing --------------------------------------------------------------------------------

    async def participants(
        self, session: AsyncSession, caller: Identity, conversation_id: uuid.UUID
    ) -> list[ParticipantRead]:
        conversation = await self.accessible(session, caller, conversation_id)
        rows = await repository.participants_of(session, conversation.id)
        return [ParticipantRead.model_validate(p) for p in rows]

    async def add_participant(
        self,
        session: AsyncSession,
        ctx: InferenceContext,
        caller: Identity,
        conversation_id: uuid.UUID,
        data: ParticipantCreate,
    ) -> tuple[ParticipantRead, bool]:
        """Share with a user (or change their role); True when they were added."""
        conversation = await self.owned(session, caller, conversation_id)
        user = await ctx.accounts.user_by_name(data.username)
        if user.id == conversation.owner_id:
            raise Conflict(
                "You own this conversation; share it with someone else.",
                code="participant_is_owner",
            )
        participant = await repository.get_participant(session, conversation.id, user.username)
        if participant is not None:
            participant.role = data.role
            await session.flush()
            return ParticipantRead.model_validate(participant), False
        participant = await repository.add_participant(
            session,
            ConversationParticipant(
                conversation_id=conversation.id,
                user_id=user.id,
                username=user.username,
                role=data.role,
            ),
        )
        return ParticipantRead.model_validate(participant), True

    async def change_participant(
        self,
        session: AsyncSession,
        caller: Identity,
        conversation_id: uuid.UUID,
        username: str,
        role: ParticipantRole,
    ) -> ParticipantRead:
        conversation = await self.owned(session, caller, conversation_id)
        participant = await repository.get_participant(session, conversation.id, username)
        if participant is None:
            raise ParticipantNotFound(f"'{username}' is not a participant of this conversation.")
        participant.role = role
        await session.flush()
        return ParticipantRead.model_validate(participant)

    async def remove_participant(
        self, session: AsyncSession, caller: Identity, conversation_id: uuid.UUID, username: str
    ) -> None:
        """The owner removes anyone; a participant may remove themselves (leave)."""
        conversation = await self.accessible(session, caller, conversation_id, for_update=True)
        leaving = username.lower() == caller.username.lower()
        if conversation.owner_id != caller.user_id and not leaving:
            raise OwnerOnly("Only the conversation's owner may remove other participants.")
        participant = await repository.get_participant(session, conversation.id, username)
        if participant is None:
            raise ParticipantNotFound(f"'{username}' is not a participant of this conversation.")
        await repository.delete_participant(session, participant)


conversation_service = ConversationService()


def _message_view(message: Message, rating: MessageFeedback | None) -> MessageView:
    view = MessageView.model_validate(message)
    if rating is not None:
        view.feedback = MyFeedback(
            rating="up" if rating.rating == 1 else "down", comment=rating.comment
        )
    return view
