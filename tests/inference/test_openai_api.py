"""The OpenAI-compatible API through the gateway, on real tiny models."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest
import torch

from shared.model_loading import load_causal_lm
from tests.factories import admin_session, user_session
from tests.inference.conftest import ready_model

PROMPT = "the quick brown fox"


def greedy_reference(folder, prompt: str, max_new_tokens: int) -> str:
    model, tokenizer = load_causal_lm(folder)
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(
            ids, max_new_tokens=max_new_tokens, do_sample=False, attention_mask=torch.ones_like(ids)
        )
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


async def _complete(client, headers, **body):
    return await client.post("/v1/completions", json={"max_tokens": 8, **body}, headers=headers)


async def test_greedy_completion_equals_model_generate(client, owner, llama, tiny_llama_dir):
    response = await _complete(
        client, owner.headers, model=llama["ref"], prompt=PROMPT, temperature=0, max_tokens=12
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "text_completion"
    assert body["model"] == llama["ref"]
    (choice,) = body["choices"]
    assert choice["text"] == greedy_reference(tiny_llama_dir, PROMPT, 12)
    assert choice["finish_reason"] in ("length", "stop")
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    again = await _complete(
        client, owner.headers, model=llama["ref"], prompt=PROMPT, temperature=0, max_tokens=12
    )
    assert again.json()["choices"][0]["text"] == choice["text"]


async def test_streaming_matches_and_ends_with_done(client, owner, llama):
    whole = (
        await _complete(client, owner.headers, model=llama["ref"], prompt=PROMPT, temperature=0)
    ).json()
    events: list[str] = []
    async with client.stream(
        "POST",
        "/v1/completions",
        headers=owner.headers,
        json={
            "model": llama["ref"],
            "prompt": PROMPT,
            "temperature": 0,
            "max_tokens": 8,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    assert text == whole["choices"][0]["text"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == whole["usage"]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == whole["choices"][0]["finish_reason"]


async def test_chat_uses_the_template_and_system_prompt(client, platform, owner, tiny_llama_dir):
    model = await ready_model(
        platform,
        owner,
        tiny_llama_dir,
        slug="chatty",
        system_prompt="You are terse.",
        default_params={"temperature": 0, "max_tokens": 6},
    )
    response = await client.post(
        "/v1/chat/completions",
        headers=owner.headers,
        json={"model": model["ref"], "messages": [{"role": "user", "content": "hello"}]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["usage"]["completion_tokens"] <= 6  # the model's default max_tokens applied
    # The system prompt is part of the prompt: it costs tokens.
    bare = await ready_model(
        platform,
        owner,
        tiny_llama_dir,
        slug="bare",
        default_params={"temperature": 0, "max_tokens": 6},
    )
    plain = (
        await client.post(
            "/v1/chat/completions",
            headers=owner.headers,
            json={"model": bare["ref"], "messages": [{"role": "user", "content": "hello"}]},
        )
    ).json()
    assert body["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"]


async def test_the_openai_client_works(platform, owner_key, llama):
    client = openai.AsyncOpenAI(base_url=f"{platform.gateway_url}/v1", api_key=owner_key)
    try:
        listed = await client.models.list()
        assert llama["ref"] in [m.id for m in listed.data]
        completion = await client.chat.completions.create(
            model=llama["ref"],
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=5,
            temperature=0,
        )
        assert completion.choices[0].message.role == "assistant"
        assert completion.usage is not None
        assert completion.usage.completion_tokens >= 1
        stream = await client.chat.completions.create(
            model=llama["ref"],
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=5,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces, usage = [], None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            if chunk.usage:
                usage = chunk.usage
        assert "".join(pieces) == completion.choices[0].message.content
        assert usage is not None
        assert usage.completion_tokens == completion.usage.completion_tokens
    finally:
        await client.close()


async def test_stop_sequences_end_the_text_before_them(client, owner, llama):
    full = (
        await _complete(
            client, owner.headers, model=llama["ref"], prompt=PROMPT, temperature=0, max_tokens=16
        )
    ).json()["choices"][0]["text"]
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    assert stop.strip(), "the reference text is too short to pick a stop sequence"
    cut = (
        await _complete(
            client,
            owner.headers,
            model=llama["ref"],
            prompt=PROMPT,
            temperature=0,
            max_tokens=16,
            stop=[stop],
        )
    ).json()["choices"][0]
    assert cut["finish_reason"] == "stop"
    assert cut["text"] == full[: full.index(stop)]


async def test_model_errors_are_clear(
    client, platform, owner, llama, tiny_llama_dir, no_template_dir
):
    other = await user_session(client)
    private = await ready_model(
        platform, owner, tiny_llama_dir, slug="secret", visibility="private"
    )
    waiting = await ready_model(
        platform, owner, tiny_llama_dir, slug="waiting", status="validating"
    )
    no_template = await ready_model(platform, owner, no_template_dir, slug="plain")
    cases = [
        (other.headers, {"model": private["ref"], "prompt": "x"}, 404, "model_not_found"),
        (owner.headers, {"model": "nobody/nothing", "prompt": "x"}, 404, "model_not_found"),
        (owner.headers, {"model": waiting["ref"], "prompt": "x"}, 409, "model_not_ready"),
        (
            owner.headers,
            {"model": llama["ref"], "prompt": "x", "max_tokens": 10**6},
            422,
            "max_tokens_too_large",
        ),
        (
            owner.headers,
            {"model": llama["ref"], "prompt": "word " * 400, "max_tokens": 8},
            400,
            "prompt_too_long",
        ),
    ]
    for headers, body, status, code in cases:
        response = await client.post("/v1/completions", json=body, headers=headers)
        assert response.status_code == status, (body, response.text)
        assert response.json()["code"] == code
    chat = await client.post(
        "/v1/chat/completions",
        headers=owner.headers,
        json={"model": no_template["ref"], "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.status_code == 400
    assert chat.json()["code"] == "no_chat_template"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "x"}, "model"),
        ({"model": "a/b"}, "prompt"),
        ({"model": "a/b", "prompt": "x", "temperature": 7}, "temperature"),
        ({"model": "a/b", "prompt": "x", "n": 2}, "n"),
        ({"model": "a/b", "prompt": "x", "logit_bias": {"1": 2}}, "logit_bias"),
        ({"model": "a/b", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ],
)
async def test_malformed_requests_are_422_naming_the_field(client, owner, body, field):
    response = await client.post("/v1/completions", json=body, headers=owner.headers)
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"].split(".")[0] == field


async def test_disconnect_cancels_and_is_accounted(client, owner, llama, platform):
    async with client.stream(
        "POST",
        "/v1/completions",
        headers=owner.headers,
        json={
            "model": llama["ref"],
            "prompt": PROMPT,
            "max_tokens": 200,
            "stream": True,
            "temperature": 0,
        },
    ) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                break
    for _ in range(100):
        ledger = (await client.get("/api/v1/usage", headers=owner.headers)).json()
        if ledger["items"]:
            break
        await asyncio.sleep(0.05)
    (record,) = ledger["items"]
    assert record["status"] == "cancelled"
    assert record["completion_tokens"] < 200
    registry = platform.apps["inference"].state.inference.registry
    for _ in range(100):
        if all(s["running"] == 0 for s in registry.stats()["models"].values()):
            break
        await asyncio.sleep(0.05)
    assert all(s["running"] == 0 for s in registry.stats()["models"].values())


async def test_usage_ledger_events_and_quota(client, platform, owner, llama):
    for _ in range(2):
        await _complete(client, owner.headers, model=llama["ref"], prompt=PROMPT)
    ledger = (await client.get("/api/v1/usage", headers=owner.headers)).json()
    assert ledger["totals"]["requests"] == 2
    assert {r["status"] for r in ledger["items"]} == {"completed"}
    assert ledger["items"][0]["model_ref"] == llama["ref"]
    other = await user_session(client)
    assert (await client.get("/api/v1/usage", headers=other.headers)).json()["items"] == []
    admin = await admin_session(client, platform)
    everyone = (await client.get("/api/v1/usage", headers=admin.headers)).json()
    assert everyone["totals"]["requests"] == 2

    events = await platform.redis.xrange("llmnet:events:model")
    usage_events = [json.loads(f["payload"]) for _, f in events if f["type"] == "model.usage"]
    assert len(usage_events) == 2
    assert usage_events[0]["model_id"] == llama["id"]

    used = ledger["totals"]["prompt_tokens"] + ledger["totals"]["completion_tokens"]
    set_quota = await client.put(
        f"/api/v1/usage/quotas/{owner.id}", json={"daily_tokens": used}, headers=admin.headers
    )
    assert set_quota.status_code == 200
    assert set_quota.json()["used_today"] == used
    spent = await _complete(client, owner.headers, model=llama["ref"], prompt=PROMPT)
    assert spent.status_code == 429
    assert spent.json()["code"] == "quota_exceeded"
    assert "retry-after" in spent.headers
    not_admin = await client.put(
        f"/api/v1/usage/quotas/{owner.id}", json={"daily_tokens": 10**9}, headers=owner.headers
    )
    assert not_admin.status_code == 403


async def test_inference_metrics_are_exported(client, platform, owner, llama):
    import httpx

    await _complete(client, owner.headers, model=llama["ref"], prompt=PROMPT, max_tokens=6)
    async with httpx.AsyncClient(base_url=platform.service_urls["inference"]) as direct:
        text = (await direct.get("/metrics")).text
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("llmnet_inference") and " " in line
    }
    assert samples['llmnet_inference_time_to_first_token_seconds_count{source="local"}'] >= 1
    assert samples['llmnet_inference_inter_token_latency_seconds_count{source="local"}'] >= 1
    assert samples['llmnet_inference_tokens_generated_total{source="local"}'] >= 1
    assert "llmnet_inference_loaded_models" in samples
