"""Sending messages: the context the engine gets, trimming, the stored metadata, the ledger."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select

from services.inference.messages import buffer
from services.inference.models import UsageRecord
from shared.errors import ServiceUnavailable
from tests.inference.messages.conftest import (
    chat_ids,
    inference,
    new_conversation,
    send,
    stream_events,
)


async def test_json_answer_has_filled_plausible_metadata(client, owner, llama):
    conversation = await new_conversation(client, owner, llama)
    response = await send(client, owner, conversation["id"], content="hello there")
    assert response.status_code == 200, response.text
    body = response.json()
    user, answer = body["user_message"], body["message"]
    assert user["role"] == "user"
    assert user["content"] == "hello there"
    assert user["parent_id"] is None
    assert answer["role"] == "assistant"
    assert answer["parent_id"] == user["id"]
    assert answer["status"] == "complete"
    assert answer["model_id"] == llama["id"]
    assert answer["model_ref"] == llama["ref"]
    assert answer["model_version_id"] == llama["version_id"]
    assert answer["parameters"] == {"temperature": 0, "max_tokens": 6}
    assert 1 <= answer["completion_tokens"] <= 6
    assert answer["prompt_tokens"] > 0
    assert 0 < answer["time_to_first_token_ms"] <= answer["latency_ms"]
    assert answer["tokens_per_second"] > 0
    assert answer["finish_reason"] in ("stop", "length")
    assert answer["trimmed_messages"] == answer["trimmed_tokens"] == 0
    assert answer["completed_at"] is not None
    assert answer["content"]


async def test_stream_carries_start_deltas_and_done(client, owner, llama):
    conversation = await new_conversation(client, owner, llama)
    events = await stream_events(
        client,
        "POST",
        f"/api/v1/conversations/{conversation['id']}/messages",
        owner,
        json={"content": "hello"},
    )
    assert events[0].event == "start"
    assert events[-1].event == "done"
    assert {e.event for e in events[1:-1]} <= {"delta"}
    start, done = events[0].data, events[-1].data
    assert start["message"]["status"] == "streaming"
    assert start["user_message"]["content"] == "hello"
    assert done["id"] == start["message"]["id"]
    assert done["status"] == "complete"
    assert "".join(e.data["text"] for e in events if e.event == "delta") == done["content"]
    assert all(e.id for e in events)


async def test_prompt_carries_previous_turns(client, owner, llama, prompts, tiny_tokenizer):
    conversation = await new_conversation(client, owner, llama, system_prompt="Be brief.")
    first = (await send(client, owner, conversation["id"], content="first question")).json()
    second = (await send(client, owner, conversation["id"], content="second question")).json()
    assert second["user_message"]["parent_id"] == first["message"]["id"]
    expected = chat_ids(
        tiny_tokenizer,
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": first["message"]["content"]},
            {"role": "user", "content": "second question"},
        ],
    )
    assert prompts[second["message"]["id"]] == expected
    assert second["message"]["prompt_tokens"] == len(expected)


async def test_trimming_keeps_the_newest_turns(client, owner, llama, prompts, tiny_tokenizer):
    # The tiny llama's context is 256 tokens; 200 go to the answer, 56 to the prompt.
    conversation = await new_conversation(
        client, owner, llama, parameters={"temperature": 0, "max_tokens": 200}
    )
    words = "the quick brown fox jumps over the lazy dog"
    turns = []
    for n in range(3):
        turns.append((await send(client, owner, conversation["id"], content=f"{n} {words}")).json())
    last = turns[-1]["message"]
    assert last["trimmed_messages"] > 0
    assert last["trimmed_tokens"] > 0
    kept = prompts[last["id"]]
    assert len(kept) <= 56
    # What reached the engine is the newest turns, whole, ending with the new message.
    path = []
    for turn in turns:
        path += [
            {"role": "user", "content": turn["user_message"]["content"]},
            {"role": "assistant", "content": turn["message"]["content"]},
        ]
    path = path[:-1]
    assert kept == chat_ids(tiny_tokenizer, path[last["trimmed_messages"] :])
    assert len(chat_ids(tiny_tokenizer, path[last["trimmed_messages"] - 2 :])) > 56


async def test_one_ledger_row_per_answer(client, platform, owner, llama):
    conversation = await new_conversation(client, owner, llama)
    for content in ("one", "two"):
        assert (await send(client, owner, conversation["id"], content=content)).status_code == 200
    async with platform.sessionmaker() as session:
        rows = await session.scalar(select(func.count()).select_from(UsageRecord))
    assert rows == 2


async def test_a_turn_that_fails_after_queueing_its_answer_aborts_it(
    client, platform, owner, llama, monkeypatch
):
    """The engine request is queued before the turn's rows are written: should the rest fail,
    the request is aborted, not left generating for nobody."""
    ctx = inference(platform)

    async def redis_away(self):
        raise ServiceUnavailable("The message buffer is unavailable; retry.", retry_after=1)

    monkeypatch.setattr(buffer.Lease, "acquire", redis_away)
    conversation = await new_conversation(
        client, owner, llama, parameters={"temperature": 0, "max_tokens": 64}
    )

    def engine_stats() -> dict[str, Any]:
        stats: dict[str, Any] = ctx.registry.stats()["models"].get(llama["version_id"], {})
        return stats

    ended_before = engine_stats().get("requests_finished", {})
    refused = await send(client, owner, conversation["id"], content="hello")
    assert refused.status_code == 503, refused.text
    for _ in range(200):
        stats = engine_stats()
        if stats["running"] == stats["waiting"] == 0:
            break
        await asyncio.sleep(0.05)
    # Aborted (whether it had started or was still queued), not run to its 64 tokens.
    ended = stats["requests_finished"]
    assert ended.get("length", 0) == ended_before.get("length", 0)
    assert ended.get("stop", 0) == ended_before.get("stop", 0)
    detail = await client.get(f"/api/v1/conversations/{conversation['id']}", headers=owner.headers)
    assert detail.json()["messages"] == []
