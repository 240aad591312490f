"""The OpenAI-compatible API through the gateway, on real tiny models."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest
import torch

from shared.model_loading import load_causal_lm
from tests.factories import user_session
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
            400,  # OpenAI's status for every malformed request
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
        # OpenAI's shape, so its client libraries show the message.
        error = response.json()["error"]
        assert error["code"] == code
        assert error["message"]
        assert error["type"] == ("invalid_request_error" if status < 500 else "server_error")
    chat = await client.post(
        "/v1/chat/completions",
        headers=owner.headers,
        json={"model": no_template["ref"], "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.status_code == 400
    assert chat.json()["error"]["code"] == "no_chat_template"


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
async def test_malformed_requests_are_400_naming_the_field(client, owner, body, field):
    response = await client.post("/v1/completions", json=body, headers=owner.headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"].split(".")[0] == field
    assert error["type"] == "invalid_request_error"


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


async def test_chat_stream_chunks_have_the_openai_shape(client, owner, llama):
    body = {
        "model": llama["ref"],
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4,
        "temperature": 0,
        "stream": True,
    }
    async with client.stream(
        "POST", "/v1/chat/completions", json=body, headers=owner.headers
    ) as response:
        assert response.status_code == 200
        lines = [line async for line in response.aiter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    for chunk in chunks:
        assert list(chunk) == ["id", "object", "created", "model", "choices"]
        assert chunk["object"] == "chat.completion.chunk"
        (choice,) = chunk["choices"]
        assert set(choice) == {"index", "delta", "finish_reason", "logprobs"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(set(c["choices"][0]["delta"]) == {"content"} for c in chunks[1:-1])
    assert chunks[-1]["choices"][0]["delta"] == {}
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert len({c["id"] for c in chunks}) == 1


async def test_the_document_describes_the_answers(client):
    document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    for path, whole, chunk in (
        ("/v1/chat/completions", "ChatCompletion", "ChatCompletionChunk"),
        ("/v1/completions", "TextCompletion", "TextCompletion"),
    ):
        content = document["paths"][path]["post"]["responses"]["200"]["content"]
        assert content["application/json"]["schema"] == {"$ref": f"#/components/schemas/{whole}"}
        events = content["text/event-stream"]["x-event-data"]["oneOf"]
        assert {"$ref": f"#/components/schemas/{chunk}"} in events
        assert {"$ref": "#/components/schemas/OpenAIErrorBody"} in events
    assert schemas["ChatCompletionChunk"]["properties"]["object"]["const"] == (
        "chat.completion.chunk"
    )
    assert "error" in schemas["OpenAIErrorBody"]["properties"]
    # Errors too are documented in OpenAI's shape on its API.
    errors = document["paths"]["/v1/completions"]["post"]["responses"]["4XX"]["content"]
    assert errors["application/json"]["schema"] == {"$ref": "#/components/schemas/OpenAIErrorBody"}
    models = document["paths"]["/v1/models"]["get"]["responses"]["200"]["content"]
    assert models["application/json"]["schema"] == {"$ref": "#/components/schemas/ModelList"}
