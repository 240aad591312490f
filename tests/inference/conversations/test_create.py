"""Creating a conversation: the model check, the parameters, the template; each refusal."""

from __future__ import annotations

import uuid

import pytest

from tests.factories import user_session
from tests.inference.conftest import ready_model
from tests.inference.conversations.conftest import BASE, create_conversation


async def test_create_stores_the_settings(client, owner, llama):
    response = await client.post(
        BASE,
        json={
            "model": llama["ref"],
            "title": "Poems",
            "system_prompt": "You write short poems.",
            "parameters": {
                "temperature": 0.7,
                "top_k": 40,
                "top_p": 0.9,
                "max_tokens": 64,
                "stop": ["\n\n"],
                "seed": 7,
            },
        },
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["title"] == "Poems"
    assert body["model_id"] == llama["id"]
    assert body["model_ref"] == llama["ref"]
    assert body["owner_id"] == owner.id
    assert body["role"] == "owner"
    assert body["system_prompt"] == "You write short poems."
    assert body["parameters"] == {
        "temperature": 0.7,
        "top_k": 40,
        "top_p": 0.9,
        "max_tokens": 64,
        "stop": ["\n\n"],
        "seed": 7,
    }
    assert body["messages"] == []
    assert body["current_message_id"] is None
    assert body["current_path"] == []


async def test_without_a_title_it_waits_for_the_first_message(client, owner, llama):
    body = await create_conversation(client, owner, llama["ref"])
    assert body["title"] == ""
    assert body["parameters"] == {}


async def test_someone_else_may_use_a_public_model(client, llama):
    user = await user_session(client)
    body = await create_conversation(client, user, llama["ref"])
    assert body["owner_id"] == user.id


async def test_an_unknown_model_is_404(client, owner):
    response = await client.post(BASE, json={"model": "nobody/nothing"}, headers=owner.headers)
    assert response.status_code == 404
    assert response.json()["code"] == "model_not_found"


async def test_another_users_private_model_is_404(client, platform, owner, tiny_llama_dir):
    private = await ready_model(
        platform, owner, tiny_llama_dir, slug="secret", visibility="private"
    )
    user = await user_session(client)
    response = await client.post(BASE, json={"model": private["ref"]}, headers=user.headers)
    assert response.status_code == 404
    assert response.json()["code"] == "model_not_found"


async def test_a_model_without_a_ready_version_is_409(client, platform, owner, tiny_llama_dir):
    pending = await ready_model(
        platform, owner, tiny_llama_dir, slug="pending", status="validating"
    )
    response = await client.post(BASE, json={"model": pending["ref"]}, headers=owner.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "model_not_ready"


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"temperature": 2.5}, "parameters.temperature"),
        ({"temperature": -0.1}, "parameters.temperature"),
        ({"top_k": 201}, "parameters.top_k"),
        ({"top_k": 1.5}, "parameters.top_k"),
        ({"top_p": 0}, "parameters.top_p"),
        ({"top_p": 1.1}, "parameters.top_p"),
        ({"max_tokens": 0}, "parameters.max_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "parameters.stop"),
        ({"stop": [""]}, "parameters.stop.0"),
        ({"seed": -1}, "parameters.seed"),
        ({"frequency_penalty": 1}, "parameters.frequency_penalty"),
    ],
)
async def test_parameters_out_of_range_are_422(client, owner, llama, parameters, field):
    response = await client.post(
        BASE, json={"model": llama["ref"], "parameters": parameters}, headers=owner.headers
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert field in [f["field"] for f in body["fields"]]


async def test_max_tokens_past_the_models_limit_is_422(client, platform, owner, llama):
    limit = platform.apps["inference"].state.inference.settings.max_tokens_limit
    response = await client.post(
        BASE,
        json={"model": llama["ref"], "parameters": {"max_tokens": limit + 1}},
        headers=owner.headers,
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "max_tokens_too_large"
    assert body["fields"][0]["field"] == "parameters.max_tokens"
    assert str(limit) in body["detail"]


@pytest.mark.parametrize(
    "fields",
    [
        {"title": ""},
        {"title": "x" * 201},
        {"title": "a\x00b"},
        {"system_prompt": "x" * 16_001},
        {"unknown": 1},
        {"model": None},
    ],
)
async def test_bad_fields_are_422(client, owner, llama, fields):
    response = await client.post(
        BASE, json={"model": llama["ref"], **fields}, headers=owner.headers
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_an_unknown_template_is_404(client, owner, llama):
    response = await client.post(
        BASE,
        json={"model": llama["ref"], "template_id": str(uuid.uuid4())},
        headers=owner.headers,
    )
    assert response.status_code == 404
    assert response.json()["code"] == "prompt_template_not_found"


async def test_creating_needs_a_login(client, llama):
    response = await client.post(BASE, json={"model": llama["ref"]})
    assert response.status_code == 401


async def test_the_document_states_the_max_tokens_limit(client, platform):
    limit = platform.apps["inference"].state.inference.settings.max_tokens_limit
    document = (await client.get("/openapi.json")).json()
    parameters = document["components"]["schemas"]["SamplingParameters"]["properties"]
    maximum = [b.get("maximum") for b in parameters["max_tokens"].get("anyOf", [])]
    assert limit in maximum
