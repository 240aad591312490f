"""Generating an answer in a server-side task that outlives the request which asked for it.

Each answer runs in an asyncio task of the process (`Generations.start`), not tied to any
client: it consumes the token events (local engine or remote provider), appends them to the
answer's Redis stream (`buffer`), saves the partial text every few seconds, and at the end
writes the message's final state and metadata with its ledger row (one transaction), frees the
caller's slot and writes the `done` event.

A watcher beside it waits for a stop and renews the lease: a stop cancels the consumer
(the message ends `cancelled` with its partial text); a lost lease (the process stalled past
the TTL and the sweeper took over) cancels it too, and the task then leaves the message to the
sweeper. Process shutdown cancels the tasks: their messages end `failed`, text kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.inference.conversations.schemas import MessageRead
from services.inference.engine import TokenEvent
from services.inference.messages import buffer, repository
from services.inference.models import (
    Message,
    MessageStatus,
    UsageEndpoint,
    UsageSource,
    UsageStatus,
)
from services.inference.openai.service import Generation, openai_service
from services.inference.usage.service import Usage, UsageRow, usage_service
from shared.db import session_scope, utcnow
from shared.errors import LLMNetError
from shared.fields import storable

if TYPE_CHECKING:
    from services.inference.config import InferenceSettings
    from services.inference.deps import InferenceContext
    from services.inference.engine import GenerationStream

    # A provider's events, or the engine's stream (closing it aborts the request, even one
    # that has not started: an async generator that never started cannot run its cleanup).
    TokenSource = AsyncGenerator[TokenEvent] | GenerationStream

logger = logging.getLogger("llmnet.inference.messages")

_USAGE_STATUS = {
    MessageStatus.COMPLETE: UsageStatus.COMPLETED,
    MessageStatus.CANCELLED: UsageStatus.CANCELLED,
    MessageStatus.FAILED: UsageStatus.FAILED,
}
ORPHANED = (
    "The process generating this answer stopped before it finished; the text is what it had "
    "written."
)


class LeaseLost(Exception):
    """Another process (the sweeper) owns the answer now."""


class _Deltas:
    """Appends the answer's text to its stream in order, one write at a time: text that comes
    while a write is in flight goes out together in the next one, so under load there are
    fewer, larger deltas instead of a Redis round trip per token."""

    def __init__(self, job: Job, stream_ttl: int) -> None:
        self.job = job
        self.stream_ttl = stream_ttl
        self.pending: list[str] = []
        self.wake = asyncio.Event()
        self.closed = False
        self.task = asyncio.create_task(self._run())

    def add(self, text: str) -> None:
        self.pending.append(text)
        self.wake.set()

    async def close(self) -> None:
        """Write what is pending, then stop."""
        self.closed = True
        self.wake.set()
        await self.task

    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.pending:
                text = "".join(self.pending)
                self.pending.clear()
                # The running count lets the sweeper bill an answer whose process died.
                tokens = self.job.generation.completion_tokens
                data = json.dumps({"text": text, "completion_tokens": tokens})
                if await self.job.lease.publish("delta", data, self.stream_ttl) is None:
                    self.job.lease_lost = True
                    return
            if self.closed:
                return


@dataclass
class Job:
    """One answer on its way."""

    message_id: uuid.UUID
    generation: Generation  # who, which model, slot, counts and timings
    tokens: TokenSource
    lease: buffer.Lease
    parts: list[str] = field(default_factory=list)
    stopped: bool = False
    lease_lost: bool = False
    finished: bool = False

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _metadata(generation: Generation, status: MessageStatus) -> dict[str, Any]:
    now = time.perf_counter()
    seconds = now - generation.started
    first = generation.first_token_at
    finish = generation.finish_reason if status is MessageStatus.COMPLETE else None
    if status is MessageStatus.CANCELLED:
        finish = "abort"
    return {
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "time_to_first_token_ms": None if first is None else (first - generation.started) * 1000,
        "latency_ms": seconds * 1000,
        "tokens_per_second": generation.completion_tokens / seconds if seconds > 0 else None,
        "finish_reason": finish,
    }


async def _finish(
    sessionmaker: async_sessionmaker[AsyncSession],
    message_id: uuid.UUID,
    values: dict[str, Any],
    ledger: Callable[[Message], tuple[UsageRow, Usage]],
) -> MessageRead | None:
    """Write the final state if the message is still streaming, and the answer's ledger row
    in the same transaction (one row per answer: whoever finalises it writes it); the message
    as written."""
    async with session_scope(sessionmaker) as session:
        message = await repository.finish(session, message_id, values)
        if message is None:
            return None
        usage_service.add_row(session, *ledger(message))
        return MessageRead.model_validate(message)


class Generations:
    """The answers this process is generating."""

    def __init__(self) -> None:
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._stops: buffer.StopSignals | None = None  # made with the first answer

    def start(self, ctx: InferenceContext, job: Job) -> None:
        task = asyncio.create_task(self._run(ctx, job), name=f"answer-{job.message_id}")
        self._tasks[job.message_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job.message_id, None))

    def running(self, message_id: uuid.UUID) -> asyncio.Task[None] | None:
        return self._tasks.get(message_id)

    async def close(self) -> None:
        """Shutdown: every running answer ends `failed`, its text kept."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._stops is not None:
            await self._stops.close()

    async def _run(self, ctx: InferenceContext, job: Job) -> None:
        deltas = _Deltas(job, ctx.settings.message_stream_ttl_seconds)
        consumer = asyncio.create_task(self._consume(ctx, job, deltas))
        watcher = asyncio.create_task(self._watch(ctx, job, consumer))
        status, error = MessageStatus.FAILED, None
        interrupted = False
        try:
            await consumer
            status = MessageStatus.COMPLETE
        except asyncio.CancelledError:
            if job.stopped:
                status = MessageStatus.CANCELLED
            elif not job.lease_lost:
                interrupted = True  # this task itself was cancelled: the process stops
                error = "The server stopped while answering; the text is what it had written."
        except LeaseLost:
            pass
        except LLMNetError as exc:
            error = exc.detail
        except Exception:
            logger.exception("answer %s failed", job.message_id)
            error = "The model failed while answering."
        finally:
            job.finished = True
            watcher.cancel()
            consumer.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.gather(consumer, return_exceptions=True)
                await job.tokens.aclose()  # aborts the engine request if it still runs
                # Every delta is in the stream before the end is written and announced.
                await asyncio.gather(deltas.close(), return_exceptions=True)
                await self._end(ctx, job, status, error)
                job.lease.end_listening()
                # Last: a cancel that lands inside a Redis command may be lost, and the
                # watcher then stops at its next turn (`finished`), which nobody waits for.
                await asyncio.gather(watcher, return_exceptions=True)
        if interrupted:
            raise asyncio.CancelledError

    async def _consume(self, ctx: InferenceContext, job: Job, deltas: _Deltas) -> None:
        settings = ctx.settings
        # Counted from the first text: before it there is nothing to save, and a save due just
        # as the first token lands (a long prefill) would delay its delivery.
        saved: float | None = None
        async for event in job.tokens:
            if job.lease_lost:
                raise LeaseLost
            if job.stopped:  # the watcher's cancel may have been lost inside a Redis call
                raise asyncio.CancelledError
            job.generation.record_progress(event)
            if not event.text:
                continue
            # PostgreSQL text holds no NUL (a random model may well produce one).
            text = storable(event.text)
            job.parts.append(text)
            deltas.add(text)
            if saved is None:
                saved = time.monotonic()
            elif time.monotonic() - saved >= settings.message_persist_seconds:
                saved = time.monotonic()
                async with session_scope(ctx.sessionmaker) as session:
                    await repository.save_partial(session, job.message_id, job.text)

    async def _watch(self, ctx: InferenceContext, job: Job, consumer: asyncio.Task[None]) -> None:
        """Wait for a stop; renew the lease every third of its TTL (the lease was just taken)."""
        pause = min(job.lease.ttl / 3, buffer.BLOCK_MS / 1000)
        stop = self._stops_of(ctx).watch(job.message_id)
        try:
            while not job.finished:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await stop.wait()
                renewal = buffer.Renewal.STOPPED if stop.is_set() else await job.lease.renew()
                if renewal is buffer.Renewal.LOST:
                    job.lease_lost = True
                    consumer.cancel()
                    return
                if renewal is buffer.Renewal.STOPPED:
                    job.stopped = True
                    consumer.cancel()
                    return
        finally:
            self._stops_of(ctx).unwatch(job.message_id)

    def _stops_of(self, ctx: InferenceContext) -> buffer.StopSignals:
        if self._stops is None:
            self._stops = buffer.StopSignals(ctx.redis)
        return self._stops

    async def _end(
        self, ctx: InferenceContext, job: Job, status: MessageStatus, error: str | None
    ) -> None:
        message: MessageRead | None = None
        usage_status = _USAGE_STATUS[status]
        try:
            if not job.lease_lost:  # else the sweeper finalises the message from the stream
                values = {
                    "content": job.text,
                    "status": status,
                    "error": error,
                    **_metadata(job.generation, status),
                }
                message = await _finish(
                    ctx.sessionmaker,
                    job.message_id,
                    values,
                    lambda _: job.generation.ledger_entry(usage_status),
                )
        except Exception:
            logger.exception("answer %s could not be finalised", job.message_id)
        # The ledger row is written before `done`, so whoever saw the answer end finds it.
        if job.lease_lost:
            await openai_service.release_slot(ctx, job.generation)
        else:
            await openai_service.settle(ctx, job.generation, usage_status)
        try:
            if message is not None:
                ttl = ctx.settings.message_stream_ttl_seconds
                await job.lease.publish("done", message.model_dump_json(), ttl)
            await job.lease.release()
        except Exception:
            logger.exception("answer %s: the end could not be announced", job.message_id)


def _orphan_ledger(message: Message, status: UsageStatus) -> tuple[UsageRow, Usage]:
    """The ledger row of an answer whose process died: its counts as the stream kept them."""
    # Answers always name their model.
    assert message.model_id is not None
    assert message.model_ref is not None
    latency = (utcnow() - message.created_at).total_seconds() * 1000
    row = UsageRow(
        user_id=message.author_id,
        api_key_id=None,  # not kept with the message
        model_id=message.model_id,
        model_ref=message.model_ref,
        # Only models served here have versions; a provider's model has none.
        source=UsageSource.LOCAL if message.model_version_id else UsageSource.REMOTE,
        endpoint=UsageEndpoint.CHAT_COMPLETIONS,
    )
    usage = Usage(
        prompt_tokens=message.prompt_tokens or 0,
        completion_tokens=message.completion_tokens or 0,
        latency_ms=latency,
        status=status,
    )
    return row, usage


async def finalise_orphan(
    redis: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: InferenceSettings,
    message_id: uuid.UUID,
    status: MessageStatus,
    error: str | None,
) -> MessageRead | None:
    """End a streaming answer nobody owns (its lease expired): take the lease, so its old owner
    can add nothing more, and write what its stream buffered. None when someone holds the lease
    or the message is not streaming."""
    lease = buffer.Lease(redis, message_id, settings.message_heartbeat_seconds, "sweeper")
    if not await lease.acquire():
        return None
    try:
        events = await buffer.buffered(redis, message_id)
        values: dict[str, Any] = {"status": status, "error": error}
        if status is MessageStatus.CANCELLED:
            values["finish_reason"] = "abort"
        if any(e.event == "start" for e in events):
            # The stream holds every delta (the saved partial text may lag behind it).
            values["content"] = buffer.buffered_text(events)
            values["completion_tokens"] = buffer.buffered_completion_tokens(events)
        # Its owner died before writing the answer's ledger row: one row per answer.
        message = await _finish(
            sessionmaker, message_id, values, lambda m: _orphan_ledger(m, _USAGE_STATUS[status])
        )
        if message is not None:
            await lease.publish(
                "done", message.model_dump_json(), settings.message_stream_ttl_seconds
            )
        return message
    finally:
        with contextlib.suppress(Exception):
            await lease.release()
