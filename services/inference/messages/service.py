"""Messages: send a turn, regenerate an answer, watch or stop one, rate one.

A turn is prepared in one transaction (access, the model's access check at send time, quota and
the caller's slot, the context built and trimmed, the engine request queued, the rows written,
the lease taken), then its answer runs in a task of its own (`generation`) that outlives the
request. Every reader, the sender's own stream included, reads the answer's Redis stream, so
all of them see the same events and any can resume after the last one it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.inference.activity.service import activity_service
from services.inference.attachments.service import AttachmentContext, attachment_service
from services.inference.conversations.schemas import MessageRead, SamplingParameters
from services.inference.conversations.service import conversation_service
from services.inference.deps import InferenceContext
from services.inference.engine import Arrival, SamplingParams
from services.inference.messages import buffer, repository
from services.inference.messages.context import (
    Context,
    chat_messages,
    engine_count,
    estimated_count,
    fit,
    system_text,
)
from services.inference.messages.generation import Job, finalise_orphan
from services.inference.messages.schemas import (
    FeedbackRead,
    FeedbackSummary,
    FeedbackUpdate,
    MessageCreate,
    MessageExchange,
    MessageStart,
    RegenerateRequest,
    VersionFeedback,
)
from services.inference.models import (
    ActivityAction,
    Conversation,
    Message,
    MessageFeedback,
    MessageRole,
    MessageStatus,
    UsageEndpoint,
    UsageSource,
)
from services.inference.openai.remote import provider_tokens
from services.inference.openai.schemas import ChatCompletionRequest, ChatMessage
from services.inference.openai.service import Generation, NoChatTemplate, openai_service
from services.inference.prompt_templates.service import prompt_template_service
from services.inference.usage.service import usage_service
from shared.auth.identity import Identity
from shared.db import session_scope
from shared.errors import Conflict, NotFound, UnprocessableEntity
from shared.models_client import ModelAccess
from shared.sse import ServerSentEvent, event_stream

if TYPE_CHECKING:
    from services.inference.messages.generation import TokenSource

_PARAMETERS = ("temperature", "top_k", "top_p", "max_tokens", "stop", "seed")
_STOP_WAIT_SECONDS = 10.0
_MODEL_HINTS = 10_000  # conversations whose model is remembered (see `_early_access`)

T = TypeVar("T")


class MessageNotFound(NotFound):
    code = "message_not_found"


class FeedbackNotFound(NotFound):
    code = "feedback_not_found"


class AnswerInProgress(Conflict):
    code = "answer_in_progress"


class InvalidParent(UnprocessableEntity):
    code = "invalid_parent"


class NotAnAnswer(UnprocessableEntity):
    code = "not_an_assistant_message"


class NoTemplate(UnprocessableEntity):
    code = "no_template"


def _wants_stream(request: Request, stream: bool | None) -> bool:
    if stream is not None:
        return stream
    return "text/event-stream" in request.headers.get("accept", "")


def _merged(
    model: ModelAccess, conversation: Conversation, overrides: SamplingParameters
) -> dict[str, Any]:
    """The turn's parameters: its own, else the conversation's, else the model's defaults."""
    merged = {k: v for k, v in model.default_params.items() if k in _PARAMETERS}
    merged.update({k: v for k, v in conversation.parameters.items() if k in _PARAMETERS})
    merged.update(overrides.stored())
    return merged


@contextlib.asynccontextmanager
async def _meanwhile(work: Coroutine[Any, Any, T]) -> AsyncIterator[asyncio.Task[T]]:
    """Run `work` beside the body (which awaits the task); cancelled if the body fails first."""
    task = asyncio.create_task(work)
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _sampling(parameters: dict[str, Any], max_tokens: int) -> SamplingParams:
    return SamplingParams(
        temperature=float(parameters.get("temperature", 1.0)),
        top_k=int(parameters.get("top_k", 0)),
        top_p=float(parameters.get("top_p", 1.0)),
        max_tokens=max_tokens,
        stop=tuple(parameters.get("stop") or ()),
        seed=parameters.get("seed"),
    )


def _max_tokens_too_large(window: int) -> UnprocessableEntity:
    return UnprocessableEntity(
        f"max_tokens must be below the model's context of {window} tokens.",
        code="max_tokens_too_large",
    )


async def _attachments(
    session: AsyncSession, conversation: Conversation, has_attachments: bool
) -> list[AttachmentContext]:
    """The conversation's attachments as context; no query when it has none."""
    if not has_attachments:
        return []
    return await attachment_service.context_for(session, conversation.id)


class MessageService:
    def __init__(self) -> None:
        # conversation id -> the model its last turn here used (see `_early_access`)
        self._model_hints: OrderedDict[uuid.UUID, str] = OrderedDict()

    # ---- sending -------------------------------------------------------------------------------

    async def send(
        self,
        ctx: InferenceContext,
        request: Request,
        caller: Identity,
        conversation_id: uuid.UUID,
        body: MessageCreate,
    ) -> Response | MessageExchange:
        """A user turn and the assistant's answer (streamed, or the whole exchange)."""
        job: Job | None = None
        with ctx.registry.arrivals.expecting() as arrival:
            try:
                async with (
                    self._early_access(ctx, caller, conversation_id) as access,
                    session_scope(ctx.sessionmaker) as session,
                ):
                    conversation, has_attachments = await conversation_service.for_turn(
                        session, caller, conversation_id
                    )
                    parent_id = (
                        body.parent_id
                        if "parent_id" in body.model_fields_set
                        else conversation.current_message_id
                    )
                    async with _meanwhile(access(conversation.model_ref)) as m:
                        path = await self._path_after(session, conversation, parent_id)
                        content = await self._content(session, caller, conversation, body)
                        attachments = await _attachments(session, conversation, has_attachments)
                        model = await m
                    await self._check_quota(ctx, session, caller, model)
                    user = Message(
                        id=uuid.uuid4(),
                        conversation_id=conversation.id,
                        parent_id=parent_id,
                        role=MessageRole.USER,
                        author_id=caller.user_id,
                        content=content,
                        status=MessageStatus.COMPLETE,
                        parameters={},
                        trimmed_messages=0,
                        trimmed_tokens=0,
                    )
                    job, answer = await self._prepare(
                        ctx,
                        session,
                        caller,
                        conversation,
                        model,
                        path,
                        user,
                        attachments,
                        body.parameters,
                        arrival,
                    )
                    await activity_service.record(
                        session,
                        caller.user_id,
                        ActivityAction.MESSAGE_SENT,
                        model_id=model.id,
                        conversation_id=conversation.id,
                        details={"message_id": str(user.id), "answer_id": str(answer.id)},
                    )
                    user_read = MessageRead.model_validate(user)
            except BaseException:
                if job is not None:
                    await self._abandon(ctx, job)
                raise
        return await self._respond(ctx, request, job, answer, user_read, body.stream)

    async def regenerate(
        self,
        ctx: InferenceContext,
        request: Request,
        caller: Identity,
        conversation_id: uuid.UUID,
        message_id: uuid.UUID,
        body: RegenerateRequest,
    ) -> Response | MessageExchange:
        """Another answer to the same user turn, a sibling of `message_id`."""
        job: Job | None = None
        with ctx.registry.arrivals.expecting() as arrival:
            try:
                async with session_scope(ctx.sessionmaker) as session:
                    conversation, has_attachments = await conversation_service.for_turn(
                        session, caller, conversation_id
                    )
                    old = await self._answer(session, conversation.id, message_id)
                    if old.status == MessageStatus.STREAMING:
                        raise AnswerInProgress("This answer is still being written; stop it first.")
                    assert old.parent_id is not None
                    ref = body.model or conversation.model_ref
                    async with _meanwhile(conversation_service.usable_model(ctx, caller, ref)) as m:
                        path = await repository.path_to(session, conversation.id, old.parent_id)
                        attachments = await _attachments(session, conversation, has_attachments)
                        model = await m
                    await self._check_quota(ctx, session, caller, model)
                    job, answer = await self._prepare(
                        ctx,
                        session,
                        caller,
                        conversation,
                        model,
                        path,
                        None,
                        attachments,
                        body.parameters,
                        arrival,
                    )
                    await activity_service.record(
                        session,
                        caller.user_id,
                        ActivityAction.MESSAGE_REGENERATED,
                        model_id=model.id,
                        conversation_id=conversation.id,
                        details={"message_id": str(old.id), "answer_id": str(answer.id)},
                    )
            except BaseException:
                if job is not None:
                    await self._abandon(ctx, job)
                raise
        return await self._respond(ctx, request, job, answer, None, body.stream)

    @contextlib.asynccontextmanager
    async def _early_access(
        self, ctx: InferenceContext, caller: Identity, conversation_id: uuid.UUID
    ) -> AsyncIterator[Callable[[str], Coroutine[Any, Any, ModelAccess]]]:
        """A turn's model access check (an HTTP call to the model hub), started before the
        conversation is read, on the model it used last time in this process (a hint), so that
        it overlaps the reads. Yields `access(ref)`: the check for the model the conversation
        names, the early one if the hint was right, else run now. Whatever it finds is only
        seen once the caller may see the conversation."""
        hint = self._model_hints.get(conversation_id)
        early = (
            asyncio.create_task(conversation_service.usable_model(ctx, caller, hint))
            if hint
            else None
        )

        async def access(ref: str) -> ModelAccess:
            self._model_hints[conversation_id] = ref
            self._model_hints.move_to_end(conversation_id)
            if len(self._model_hints) > _MODEL_HINTS:
                self._model_hints.popitem(last=False)
            if early is not None and ref == hint:
                return await early
            return await conversation_service.usable_model(ctx, caller, ref)

        try:
            yield access
        finally:
            if early is not None:
                early.cancel()
                await asyncio.gather(early, return_exceptions=True)

    async def _check_quota(
        self, ctx: InferenceContext, session: AsyncSession, caller: Identity, model: ModelAccess
    ) -> None:
        """In the turn's own transaction: a session of its own would cost a connection
        checkout and a transaction more on every turn."""
        await usage_service.check_quota(session, caller, ctx.settings.daily_token_quota, model)

    async def _path_after(
        self, session: AsyncSession, conversation: Conversation, parent_id: uuid.UUID | None
    ) -> list[Message]:
        """The context a new user turn follows: the path down to its parent answer."""
        if parent_id is None:
            return []
        path = await repository.path_to(session, conversation.id, parent_id)
        if not path:
            raise MessageNotFound("No such message in this conversation.")
        parent = path[-1]
        if parent.role != MessageRole.ASSISTANT:
            raise InvalidParent(
                "parent_id must be an assistant message (the answer this turn follows); to edit "
                "a user message, send the new text with that message's parent_id."
            )
        if parent.status == MessageStatus.STREAMING:
            raise AnswerInProgress(
                "The answer this turn follows is still being written; wait for it or stop it first."
            )
        return path

    async def _abandon(self, ctx: InferenceContext, job: Job) -> None:
        """Undo a prepared answer whose rows were not committed."""
        with contextlib.suppress(Exception):
            await job.tokens.aclose()
            await job.lease.release()
            await ctx.redis.decr(job.generation.slot)

    async def _content(
        self,
        session: AsyncSession,
        caller: Identity,
        conversation: Conversation,
        body: MessageCreate,
    ) -> str:
        if body.content is not None:
            return body.content
        template_id = body.template_id or conversation.template_id
        if template_id is None:
            raise NoTemplate(
                "`variables` fill a prompt template, and neither the message nor the "
                "conversation names one; send `template_id` or `content`."
            )
        content = await prompt_template_service.render(
            session, caller, template_id, body.variables or {}
        )
        await activity_service.record(
            session,
            caller.user_id,
            ActivityAction.TEMPLATE_USED,
            model_id=conversation.model_id,
            conversation_id=conversation.id,
            details={"template_id": str(template_id)},
        )
        return content

    async def _prepare(
        self,
        ctx: InferenceContext,
        session: AsyncSession,
        caller: Identity,
        conversation: Conversation,
        model: ModelAccess,
        path: list[Message],
        user: Message | None,
        attachments: list[AttachmentContext],
        overrides: SamplingParameters,
        arrival: Arrival,
    ) -> tuple[Job, Message]:
        """Everything before the answer runs: the caller's slot, the context, the engine request
        (queued first, so the model starts while the rows are written), the assistant message
        (streaming), written with `user` (the turn's new user message, after `path`; none when
        regenerating), and its lease. Undone if anything fails."""
        parameters = _merged(model, conversation, overrides)
        conversation_service.check_parameters(parameters, model, ctx.settings)
        slot = await openai_service.acquire_slot(ctx, caller)
        answer_id = uuid.uuid4()
        generation = Generation(
            caller, model, UsageEndpoint.CHAT_COMPLETIONS, f"msg-{answer_id}", slot
        )
        tokens: TokenSource | None = None
        lease = buffer.Lease(ctx.redis, answer_id, ctx.settings.message_heartbeat_seconds, "answer")
        try:
            system = system_text(conversation.system_prompt or model.system_prompt, attachments)
            context_path = path if user is None else [*path, user]
            context, tokens = await self._tokens(
                ctx, model, system, context_path, parameters, answer_id, arrival
            )
            answer = Message(
                id=answer_id,
                conversation_id=conversation.id,
                parent_id=context_path[-1].id,
                role=MessageRole.ASSISTANT,
                author_id=caller.user_id,
                content="",
                status=MessageStatus.STREAMING,
                model_id=model.id,
                model_ref=model.ref,
                model_version_id=model.active_version.id if model.active_version else None,
                parameters=parameters,
                prompt_tokens=len(context.prompt_ids) if context.prompt_ids is not None else None,
                trimmed_messages=context.trimmed_messages,
                trimmed_tokens=context.trimmed_tokens,
            )
            await repository.add_messages(session, [answer] if user is None else [user, answer])
            text = None if user is None else user.content
            await conversation_service.advance(session, conversation, answer.id, text)
            # Before the commit: a streaming message is never without its lease.
            await lease.acquire()
        except BaseException:
            with contextlib.suppress(Exception):
                if tokens is not None:
                    await tokens.aclose()
                await ctx.redis.decr(slot)
            raise
        return Job(answer_id, generation, tokens, lease), answer

    async def _tokens(
        self,
        ctx: InferenceContext,
        model: ModelAccess,
        system: str | None,
        path: list[Message],
        parameters: dict[str, Any],
        answer_id: uuid.UUID,
        arrival: Arrival,
    ) -> tuple[Context, TokenSource]:
        settings = ctx.settings
        explicit = parameters.get("max_tokens")
        if model.source == UsageSource.REMOTE and model.remote is not None:
            # No local tokenizer: the provider gets the path as OpenAI messages, trimmed by an
            # overestimate where the owner stated the model's context (else whole).
            window = model.remote.context_length
            if window is None:
                context = Context(chat_messages(system, path), None)
            else:
                if explicit is not None and explicit >= window:
                    raise _max_tokens_too_large(window)
                reserve = explicit or min(settings.default_max_tokens, window // 2)
                context = fit(estimated_count, system, path, window - reserve)
            request = ChatCompletionRequest(
                model=model.ref,
                messages=[ChatMessage.model_validate(m) for m in context.messages],
                max_tokens=explicit,
                temperature=parameters.get("temperature"),
                top_p=parameters.get("top_p"),
                stop=parameters.get("stop"),
                seed=parameters.get("seed"),
            )
            arrival.done()  # no engine of ours waits for it
            return context, provider_tokens(ctx, model.remote, request)
        engine = await openai_service.engine_for(ctx, model)
        if not engine.has_chat_template:
            raise NoChatTemplate(
                "This model has no chat template, so it cannot hold a conversation; use "
                "/v1/completions with a plain prompt."
            )
        window = engine.context_length
        if explicit is not None and explicit >= window:
            raise _max_tokens_too_large(window)
        reserve = explicit or min(settings.default_max_tokens, window // 2)
        context = fit(engine_count(engine), system, path, window - reserve)
        assert context.prompt_ids is not None
        room = window - len(context.prompt_ids)
        max_tokens = explicit or max(1, min(settings.default_max_tokens, room))
        stream = engine.generate(
            str(answer_id), context.prompt_ids, _sampling(parameters, max_tokens), arrival
        )
        return context, stream

    async def _respond(
        self,
        ctx: InferenceContext,
        request: Request,
        job: Job,
        answer: Message,
        user: MessageRead | None,
        stream: bool | None,
    ) -> Response | MessageExchange:
        """Committed: announce the answer and run it. The asker reads it as it is written
        (`_asked`); every other reader follows the Redis stream."""
        start = MessageStart(user_message=user, message=MessageRead.model_validate(answer))
        ttl = ctx.settings.message_stream_ttl_seconds
        events = job.lease.listen()
        try:
            await job.lease.publish("start", start.model_dump_json(), ttl)
        finally:
            ctx.generations.start(ctx, job)
        if _wants_stream(request, stream):
            return self._response(self._asked(ctx, job, events), ctx)
        final: MessageRead | None = None
        async for event in self._asked(ctx, job, events):
            if event.event == "done":
                final = MessageRead.model_validate_json(event.raw_data or "{}")
        assert final is not None
        return MessageExchange(user_message=user, message=final)

    async def _asked(
        self, ctx: InferenceContext, job: Job, events: asyncio.Queue[buffer.BufferedEvent | None]
    ) -> AsyncIterator[ServerSentEvent]:
        """The answer's events as its lease writes them; should the lease end before `done`
        (the sweeper took the answer over), the rest from the Redis stream."""
        last = "0"
        try:
            while (event := await events.get()) is not None:
                yield ServerSentEvent(raw_data=event.data, event=event.event, id=event.id)
                if event.event == "done":
                    return
                last = event.id
        finally:
            job.lease.unlisten(events)
        async for followed in self._followed(ctx, job.message_id, last):
            yield followed

    # ---- watching and stopping -------------------------------------------------------------------

    async def watch(
        self,
        ctx: InferenceContext,
        caller: Identity,
        conversation_id: uuid.UUID,
        message_id: uuid.UUID,
        last_event_id: str | None,
    ) -> Response:
        """The answer's events after `Last-Event-ID` (all of them without it), live."""
        async with session_scope(ctx.sessionmaker) as session:
            await conversation_service.accessible(session, caller, conversation_id)
            await self._answer(session, conversation_id, message_id)
        after = buffer.check_last_event_id(last_event_id)
        return self._response(self._followed(ctx, message_id, after), ctx)

    def _response(self, events: AsyncIterator[ServerSentEvent], ctx: InferenceContext) -> Response:
        # Capped like the buffer itself: a client still watching then re-attaches with its
        # Last-Event-ID, as EventSource does by itself.
        lifetime = float(ctx.settings.message_stream_ttl_seconds)
        return event_stream(events, lifetime=lifetime)

    async def _followed(
        self, ctx: InferenceContext, message_id: uuid.UUID, after: str
    ) -> AsyncIterator[ServerSentEvent]:
        """The buffered and live events; when the buffer has nothing more to give (expired, or
        its owner gone without a lease) a last `done` with the stored message."""
        # An owner that died leaves its stream without a lease until the sweeper (every 30 s)
        # ends it; a stream that expired has nothing more to give.
        idle = 2.0 * ctx.settings.message_heartbeat_seconds + 30
        async for event in buffer.follow(ctx.redis, message_id, after, idle_timeout=idle):
            yield ServerSentEvent(raw_data=event.data, event=event.event, id=event.id)
            if event.event == "done":
                return
        async with session_scope(ctx.sessionmaker) as session:
            message = await session.get(Message, message_id)
            assert message is not None
            data = MessageRead.model_validate(message).model_dump_json()
        yield ServerSentEvent(raw_data=data, event="done")

    async def stop(
        self,
        ctx: InferenceContext,
        caller: Identity,
        conversation_id: uuid.UUID,
        message_id: uuid.UUID,
    ) -> MessageRead:
        """Stop a streaming answer (from any replica): it ends `cancelled` with its text so far.
        An answer that has ended already is returned as it is."""
        async with session_scope(ctx.sessionmaker) as session:
            await conversation_service.accessible(session, caller, conversation_id, write=True)
            message = await self._answer(session, conversation_id, message_id)
            streaming = message.status == MessageStatus.STREAMING
        if streaming:
            if await buffer.lease_alive(ctx.redis, message_id):
                await buffer.signal_stop(
                    ctx.redis, message_id, ctx.settings.message_heartbeat_seconds
                )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_STOP_WAIT_SECONDS):
                        async for event in buffer.follow(
                            ctx.redis, message_id, "0", idle_timeout=_STOP_WAIT_SECONDS
                        ):
                            if event.event == "done":
                                break
            else:
                await finalise_orphan(
                    ctx.redis,
                    ctx.sessionmaker,
                    ctx.settings,
                    message_id,
                    MessageStatus.CANCELLED,
                    None,
                )
        async with session_scope(ctx.sessionmaker) as session:
            message = await self._answer(session, conversation_id, message_id)
            return MessageRead.model_validate(message)

    # ---- feedback --------------------------------------------------------------------------------

    async def put_feedback(
        self,
        session: AsyncSession,
        caller: Identity,
        conversation_id: uuid.UUID,
        message_id: uuid.UUID,
        body: FeedbackUpdate,
    ) -> FeedbackRead:
        await conversation_service.accessible(session, caller, conversation_id)
        await self._answer(session, conversation_id, message_id)
        rating = 1 if body.rating == "up" else -1
        row = await repository.put_feedback(
            session, message_id, caller.user_id, rating, body.comment
        )
        return _feedback_read(row)

    async def delete_feedback(
        self,
        session: AsyncSession,
        caller: Identity,
        conversation_id: uuid.UUID,
        message_id: uuid.UUID,
    ) -> None:
        await conversation_service.accessible(session, caller, conversation_id)
        await self._answer(session, conversation_id, message_id)
        if not await repository.delete_feedback(session, message_id, caller.user_id):
            raise FeedbackNotFound("You have not rated this message.")

    async def feedback_summary(
        self, ctx: InferenceContext, session: AsyncSession, caller: Identity, ref: str
    ) -> FeedbackSummary:
        """Thumbs per version of a model: its owner's (and admins') view."""
        model = await ctx.models.access(ref, caller)
        if model.owner_id != caller.user_id and not caller.is_admin:
            # Users of a model do not learn what others thought of it.
            raise NotFound("No such model.", code="model_not_found")
        rows = await repository.feedback_summary(session, model.id)
        return FeedbackSummary(
            model_id=model.id,
            model_ref=model.ref,
            versions=[
                VersionFeedback(model_version_id=v, up=up, down=down, comments=comments)
                for v, up, down, comments in rows
            ],
        )

    # ---- lookups ---------------------------------------------------------------------------------

    async def _message(
        self, session: AsyncSession, conversation_id: uuid.UUID, message_id: uuid.UUID
    ) -> Message:
        message = await repository.get_message(session, conversation_id, message_id)
        if message is None:
            raise MessageNotFound("No such message in this conversation.")
        return message

    async def _answer(
        self, session: AsyncSession, conversation_id: uuid.UUID, message_id: uuid.UUID
    ) -> Message:
        message = await self._message(session, conversation_id, message_id)
        if message.role != MessageRole.ASSISTANT:
            raise NotAnAnswer("This is a user message; only assistant answers can be used so.")
        return message


def _feedback_read(row: MessageFeedback) -> FeedbackRead:
    return FeedbackRead(
        message_id=row.message_id,
        user_id=row.user_id,
        rating="up" if row.rating == 1 else "down",
        comment=row.comment,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


message_service = MessageService()
