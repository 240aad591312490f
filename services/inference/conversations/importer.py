"""Import: a conversation document (the JSON export) back into a new conversation.

The inverse of `export.to_json`: every message of every branch comes back with its place in
the tree, its role, content and metadata (model, version, parameters, tokens, timings, status,
timestamps), and the current branch, as a new conversation owned by the caller. What is not
the caller's to bring is not taken: ids are new, the caller is the owner and the author of
every message, participants are left out, and the conversation's model must be one the caller
may use now (404 / 409, as creating a conversation). A document that is not a conversation
tree (a parent that is not an earlier message, a user turn answering a user turn, an answer
still streaming) is a 422 naming the message; one past the size bounds a 413.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.inference.activity.service import activity_service
from services.inference.conversations import repository
from services.inference.conversations.schemas import (
    IMPORT_MAX_CONTENT_CHARS,
    ConversationImport,
    ImportedMessage,
)
from services.inference.conversations.service import conversation_service, title_from
from services.inference.deps import InferenceContext
from services.inference.models import (
    ActivityAction,
    Conversation,
    Message,
    MessageRole,
    MessageStatus,
)
from services.inference.prompt_templates.service import (
    PromptTemplateNotFound,
    prompt_template_service,
)
from shared.auth.identity import Identity
from shared.errors import FieldError, PayloadTooLarge, UnprocessableEntity


class InvalidConversationDocument(UnprocessableEntity):
    code = "invalid_conversation_document"


class ConversationDocumentTooLarge(PayloadTooLarge):
    code = "conversation_document_too_large"


def _refuse(field: str, message: str) -> InvalidConversationDocument:
    return InvalidConversationDocument(
        f"Invalid conversation document. {field}: {message}.",
        fields=[FieldError(field=field, message=message)],
    )


# The parent a message of each role may have: a user turn opens the conversation or answers an
# answer (an edit is a sibling user turn); an answer answers a user turn (a regeneration is a
# sibling answer).
_PARENT_ROLES: dict[str, set[str | None]] = {
    MessageRole.USER: {None, MessageRole.ASSISTANT},
    MessageRole.ASSISTANT: {MessageRole.USER},
}


def check_tree(document: ConversationImport) -> uuid.UUID | None:
    """Check the messages form a conversation tree, parents first; the current leaf (the
    document's, or its last message) as the document numbers it."""
    total = sum(len(m.content) for m in document.messages)
    if total > IMPORT_MAX_CONTENT_CHARS:
        raise ConversationDocumentTooLarge(
            f"The messages hold {total} characters together; an import holds at most "
            f"{IMPORT_MAX_CONTENT_CHARS}."
        )
    roles: dict[uuid.UUID, str] = {}
    for n, message in enumerate(document.messages):
        where = f"messages.{n}"
        if message.id in roles:
            raise _refuse(f"{where}.id", "appears twice; each message needs its own id")
        if message.parent_id is not None and message.parent_id not in roles:
            raise _refuse(
                f"{where}.parent_id",
                "is not the id of an earlier message (parents come before their children)",
            )
        parent_role = roles[message.parent_id] if message.parent_id is not None else None
        if parent_role not in _PARENT_ROLES[message.role]:
            expected = "a user message" if message.role == MessageRole.ASSISTANT else "an answer"
            raise _refuse(
                f"{where}.parent_id",
                f"a {message.role} message must follow {expected}"
                + (" or open the conversation" if message.role == MessageRole.USER else ""),
            )
        if message.status == MessageStatus.STREAMING:
            raise _refuse(
                f"{where}.status",
                "is still streaming; export again once the answer has finished",
            )
        roles[message.id] = message.role
    current = document.conversation.current_message_id
    if current is not None and current not in roles:
        raise _refuse("conversation.current_message_id", "is not the id of one of the messages")
    if current is None and document.messages:
        current = document.messages[-1].id
    return current


def _title(document: ConversationImport) -> str:
    if document.conversation.title:
        return document.conversation.title
    first = next((m for m in document.messages if m.role == MessageRole.USER), None)
    return title_from(first.content) if first else ""


def _message(
    conversation_id: uuid.UUID,
    ids: dict[uuid.UUID, uuid.UUID],
    caller: Identity,
    m: ImportedMessage,
) -> Message:
    message = Message(
        id=ids[m.id],
        conversation_id=conversation_id,
        parent_id=ids[m.parent_id] if m.parent_id is not None else None,
        role=m.role,
        author_id=caller.user_id,
        content=m.content,
        status=m.status,
        error=m.error,
        model_id=m.model_id,
        model_ref=m.model_ref,
        model_version_id=m.model_version_id,
        parameters=m.parameters,
        prompt_tokens=m.prompt_tokens,
        completion_tokens=m.completion_tokens,
        time_to_first_token_ms=m.time_to_first_token_ms,
        latency_ms=m.latency_ms,
        tokens_per_second=m.tokens_per_second,
        finish_reason=m.finish_reason,
        trimmed_messages=m.trimmed_messages,
        trimmed_tokens=m.trimmed_tokens,
        completed_at=m.completed_at,
    )
    # Left out, the database's now() stands in (the tree order does not rest on timestamps).
    if m.created_at is not None:
        message.created_at = m.created_at
    changed = m.updated_at or m.created_at
    if changed is not None:
        message.updated_at = changed
    return message


async def import_conversation(
    session: AsyncSession, ctx: InferenceContext, caller: Identity, document: ConversationImport
) -> Conversation:
    data = document.conversation
    # The model first: a document for a model the caller may not use is a 404 however it is.
    model = await conversation_service.usable_model(ctx, caller, data.model_ref)
    current = check_tree(document)
    parameters = data.parameters.stored()
    conversation_service.check_parameters(parameters, model, ctx.settings)
    if data.template_id is not None:
        try:
            await prompt_template_service.visible(session, caller, data.template_id)
        except PromptTemplateNotFound:
            raise _refuse(
                "conversation.template_id", "is not a prompt template you may use"
            ) from None
    conversation = await repository.add_conversation(
        session,
        Conversation(
            owner_id=caller.user_id,
            title=_title(document),
            model_id=model.id,
            model_ref=model.ref,
            system_prompt=data.system_prompt,
            parameters=parameters,
            template_id=data.template_id,
        ),
    )
    ids = {m.id: uuid.uuid4() for m in document.messages}
    session.add_all([_message(conversation.id, ids, caller, m) for m in document.messages])
    await session.flush()
    conversation.current_message_id = ids[current] if current is not None else None
    await session.flush()
    await session.refresh(conversation)
    # Recorded as the creation it is (the recorded actions are a fixed vocabulary).
    await activity_service.record(
        session,
        caller.user_id,
        ActivityAction.CONVERSATION_CREATED,
        model_id=model.id,
        conversation_id=conversation.id,
        details={
            "model": model.ref,
            "title": conversation.title,
            "imported": True,
            "messages": len(document.messages),
        },
    )
    return conversation
