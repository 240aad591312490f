"""Answers that outlive their client: re-attach with Last-Event-ID, two watchers, stop, the
sweeper that ends answers whose owner died."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import uuid

from arq import ArqRedis

from services.inference.messages import buffer, repository
from services.inference.messages.tasks import sweep_messages
from services.inference.models import MessageStatus
from shared.db import session_scope
from shared.jobs import create_job_pool
from tests.inference.messages.conftest import (
    inference,
    new_conversation,
    parse_events,
    stream_events,
)

LONG = {"temperature": 0, "max_tokens": 220}


async def _started(client, owner, conversation_id, deltas: int):
    """Send a message as a stream, read `start` and `deltas` deltas, then leave (disconnect)."""
    seen = []
    async with client.stream(
        "POST",
        f"/api/v1/conversations/{conversation_id}/messages",
        headers={**owner.headers, "Accept": "text/event-stream"},
        json={"content": "tell me a story"},
    ) as response:
        assert response.status_code == 200
        lines: list[str] = []
        async for line in response.aiter_lines():
            lines.append(line)
            if line == "":
                seen = parse_events(lines)
                if len([e for e in seen if e.event == "delta"]) >= deltas:
                    break
    return seen


async def _message(client, owner, conversation_id, message_id):
    read = await client.get(f"/api/v1/conversations/{conversation_id}", headers=owner.headers)
    assert read.status_code == 200, read.text
    return next(m for m in read.json()["messages"] if m["id"] == message_id)


async def _watch(client, owner, conversation_id, message_id, last_event_id=None):
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    return await stream_events(
        client,
        "GET",
        f"/api/v1/conversations/{conversation_id}/messages/{message_id}/stream",
        owner,
        headers=headers,
    )


@contextlib.contextmanager
def _slow_answers(platform, monkeypatch, **settings):
    """Tokens handed on slowly (answers stay streaming long enough to act on), with these
    inference settings; the settings are put back by hand (Starlette's State is not restored
    by monkeypatch)."""
    from services.inference.engine.engine import GenerationStream

    next_event = GenerationStream.__anext__

    async def slowly(stream):
        event = await next_event(stream)
        await asyncio.sleep(0.05)
        return event

    monkeypatch.setattr(GenerationStream, "__anext__", slowly)
    app = platform.apps["inference"]
    original = app.state.inference
    changed = original.settings.model_copy(update=settings)
    app.state.inference = dataclasses.replace(original, settings=changed)
    try:
        yield
    finally:
        app.state.inference = original


def _text(events):
    return "".join(e.data["text"] for e in events if e.event == "delta")


async def test_reattach_resumes_with_no_gap_and_no_repeat(client, owner, llama):
    conversation = await new_conversation(client, owner, llama, parameters=LONG)
    seen = await _started(client, owner, conversation["id"], deltas=3)
    message_id = seen[0].data["message"]["id"]
    rest = await _watch(client, owner, conversation["id"], message_id, seen[-1].id)
    assert rest[-1].event == "done"
    assert rest[0].event == "delta"  # nothing before the last event seen comes again
    ids = [e.id for e in seen + rest]
    assert len(ids) == len(set(ids))
    stored = await _message(client, owner, conversation["id"], message_id)
    assert stored["status"] == "complete"
    assert _text(seen) + _text(rest) == stored["content"]
    assert rest[-1].data["content"] == stored["content"]


async def test_answer_keeps_generating_after_the_client_left(client, owner, llama):
    conversation = await new_conversation(client, owner, llama, parameters=LONG)
    seen = await _started(client, owner, conversation["id"], deltas=1)
    message_id = seen[0].data["message"]["id"]
    whole = await _watch(client, owner, conversation["id"], message_id)
    stored = await _message(client, owner, conversation["id"], message_id)
    assert whole[0].event == "start"
    assert stored["status"] == "complete"
    assert stored["completion_tokens"] == 220 or stored["finish_reason"] == "stop"
    assert _text(whole) == stored["content"]


async def test_two_watchers_see_the_same_tokens(client, owner, llama):
    conversation = await new_conversation(client, owner, llama, parameters=LONG)
    seen = await _started(client, owner, conversation["id"], deltas=0)
    message_id = seen[0].data["message"]["id"]
    one, two = await asyncio.gather(
        _watch(client, owner, conversation["id"], message_id),
        _watch(client, owner, conversation["id"], message_id),
    )
    assert [(e.id, e.event, e.data) for e in one] == [(e.id, e.event, e.data) for e in two]
    stored = await _message(client, owner, conversation["id"], message_id)
    assert _text(one) == stored["content"]


async def test_stop_leaves_a_cancelled_message_with_its_partial_text(
    client, platform, owner, llama
):
    conversation = await new_conversation(client, owner, llama, parameters=LONG)
    seen = await _started(client, owner, conversation["id"], deltas=2)
    message_id = seen[0].data["message"]["id"]
    response = await client.post(
        f"/api/v1/conversations/{conversation['id']}/messages/{message_id}/stop",
        headers=owner.headers,
    )
    assert response.status_code == 200, response.text
    stopped = response.json()
    assert stopped["status"] == "cancelled"
    assert stopped["finish_reason"] == "abort"
    assert stopped["content"].startswith(_text(seen))
    assert stopped["completion_tokens"] < 220
    events = await buffer.buffered(inference(platform).redis, uuid.UUID(message_id))
    assert buffer.buffered_text(events) == stopped["content"]
    assert events[-1].event == "done"
    assert json.loads(events[-1].data)["status"] == "cancelled"


async def test_a_stop_on_the_stops_stream_wakes_only_its_answers_watcher(platform):
    redis = platform.redis
    stops = buffer.StopSignals(redis)
    mine, other = uuid.uuid4(), uuid.uuid4()
    try:
        stopped, untouched = stops.watch(mine), stops.watch(other)
        await buffer.signal_stop(redis, mine, ttl=60)
        await asyncio.wait_for(stopped.wait(), 5)
        assert not untouched.is_set()
    finally:
        await stops.close()


async def test_a_stop_the_stream_did_not_announce_is_seen_at_the_next_renewal(
    client, platform, owner, llama, monkeypatch
):
    """A stop left on the answer's list alone (its announcement missed while Redis was away,
    or sent before the watcher began) still ends the answer: each lease renewal checks it."""
    with _slow_answers(platform, monkeypatch, message_heartbeat_seconds=3):
        conversation = await new_conversation(client, owner, llama, parameters=LONG)
        seen = await _started(client, owner, conversation["id"], deltas=1)
        message_id = seen[0].data["message"]["id"]
        await platform.redis.rpush(buffer.stop_key(uuid.UUID(message_id)), "stop")
        events = await asyncio.wait_for(_watch(client, owner, conversation["id"], message_id), 20)
    assert events[-1].event == "done"
    assert events[-1].data["status"] == "cancelled"
    assert events[-1].data["completion_tokens"] < 220


async def test_a_dead_owners_answer_fails_with_its_text_after_the_sweep(
    client, platform, owner, llama
):
    ctx = inference(platform)
    conversation = await new_conversation(client, owner, llama, parameters=LONG)
    seen = await _started(client, owner, conversation["id"], deltas=3)
    message_id = uuid.UUID(seen[0].data["message"]["id"])
    # The owner's lease expires (its process stalled or died): it can write nothing more.
    await ctx.redis.delete(buffer.lease_key(message_id))
    pool: ArqRedis = await create_job_pool(platform.common["redis_url"])
    try:
        swept = await sweep_messages(
            {"redis": pool, "sessionmaker": platform.sessionmaker, "settings": ctx.settings}
        )
    finally:
        await pool.aclose()
    assert swept == 1
    stored = await _message(client, owner, conversation["id"], str(message_id))
    assert stored["status"] == "failed"
    assert "stopped before it finished" in stored["error"]
    events = await buffer.buffered(ctx.redis, message_id)
    assert stored["content"] == buffer.buffered_text(events)
    assert stored["content"].startswith(_text(seen))
    # Watchers get the end the sweeper wrote; the old owner added nothing after it.
    assert events[-1].event == "done"
    assert json.loads(events[-1].data)["status"] == "failed"
    await asyncio.sleep(0.3)
    assert await buffer.buffered(ctx.redis, message_id) == events
    assert ctx.generations.running(message_id) is None
    # The sweeper bills the answer once, with the tokens its stream holds.
    ledger = await client.get("/api/v1/usage", headers=owner.headers)
    rows = [r for r in ledger.json()["items"] if r["status"] == "failed"]
    assert len(rows) == 1
    assert 3 <= rows[0]["completion_tokens"] == stored["completion_tokens"]
    assert rows[0]["prompt_tokens"] == stored["prompt_tokens"] > 0


async def test_an_answer_someone_else_finalised_first_is_not_billed_again(
    client, platform, owner, llama
):
    """The final state and the ledger row are written together: the owner, finding the answer
    finalised already (by the sweeper, say), writes neither, nor announces an end of its own."""
    ctx = inference(platform)
    conversation = await new_conversation(client, owner, llama, parameters=LONG)
    seen = await _started(client, owner, conversation["id"], deltas=3)
    message_id = uuid.UUID(seen[0].data["message"]["id"])
    async with session_scope(platform.sessionmaker) as session:
        values = {"status": MessageStatus.FAILED, "content": "ended elsewhere"}
        assert await repository.finish(session, message_id, values) is not None
    task = ctx.generations.running(message_id)
    assert task is not None
    await asyncio.wait_for(task, timeout=60)  # the owner's answer runs to its end
    stored = await _message(client, owner, conversation["id"], str(message_id))
    assert (stored["status"], stored["content"]) == ("failed", "ended elsewhere")
    ledger = await client.get("/api/v1/usage", headers=owner.headers)
    assert ledger.json()["items"] == []
    events = await buffer.buffered(ctx.redis, message_id)
    assert "done" not in {e.event for e in events}


async def test_an_expired_stream_answers_with_the_stored_message(client, platform, owner, llama):
    conversation = await new_conversation(client, owner, llama)
    response = await client.post(
        f"/api/v1/conversations/{conversation['id']}/messages",
        headers=owner.headers,
        json={"content": "hi", "stream": False},
    )
    answer = response.json()["message"]
    await inference(platform).redis.delete(buffer.events_key(uuid.UUID(answer["id"])))
    events = await _watch(client, owner, conversation["id"], answer["id"])
    assert [e.event for e in events] == ["done"]
    assert events[0].data == answer


async def test_no_turn_follows_an_answer_still_being_written(client, owner, llama):
    conversation = await new_conversation(client, owner, llama, parameters=LONG)
    seen = await _started(client, owner, conversation["id"], deltas=0)
    message_id = seen[0].data["message"]["id"]
    base = f"/api/v1/conversations/{conversation['id']}/messages"
    follow_up = await client.post(
        base, headers=owner.headers, json={"content": "and then?", "stream": False}
    )
    regenerate = await client.post(
        f"{base}/{message_id}/regenerate", headers=owner.headers, json={"stream": False}
    )
    await client.post(f"{base}/{message_id}/stop", headers=owner.headers)
    for response in (follow_up, regenerate):
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "answer_in_progress"


async def test_stopping_an_answer_whose_owner_died_ends_it_cancelled(
    client, platform, owner, llama
):
    ctx = inference(platform)
    conversation = await new_conversation(client, owner, llama, parameters=LONG)
    seen = await _started(client, owner, conversation["id"], deltas=2)
    message_id = uuid.UUID(seen[0].data["message"]["id"])
    await ctx.redis.delete(buffer.lease_key(message_id))
    response = await client.post(
        f"/api/v1/conversations/{conversation['id']}/messages/{message_id}/stop",
        headers=owner.headers,
    )
    assert response.status_code == 200, response.text
    stopped = response.json()
    assert stopped["status"] == "cancelled"
    events = await buffer.buffered(ctx.redis, message_id)
    assert stopped["content"] == buffer.buffered_text(events)
    assert stopped["content"].startswith(_text(seen))


async def test_a_streaming_answers_text_is_saved_in_its_row_as_it_is_written(
    client, platform, owner, llama, monkeypatch
):
    """Every INFERENCE_MESSAGE_PERSIST_SECONDS, counted from the first token: someone reading
    the conversation sees the text so far while the answer streams. (Tokens are handed on
    slowly here, so the answer is still streaming when it is read.)"""
    with _slow_answers(platform, monkeypatch, message_persist_seconds=0.2):
        conversation = await new_conversation(client, owner, llama, parameters=LONG)
        seen = await _started(client, owner, conversation["id"], deltas=1)
        message_id = seen[0].data["message"]["id"]
        await asyncio.sleep(0.6)
        partial = await _message(client, owner, conversation["id"], message_id)
        await client.post(
            f"/api/v1/conversations/{conversation['id']}/messages/{message_id}/stop",
            headers=owner.headers,
        )
        final = await _message(client, owner, conversation["id"], message_id)
    assert partial["status"] == "streaming"
    assert partial["content"]
    assert final["content"].startswith(partial["content"])
