"""Prompt templates through the gateway: built-ins, your own (CRUD), render, the sandbox."""

from __future__ import annotations

import uuid

import pytest

from services.inference.prompt_templates.builtin import BUILTIN_TEMPLATES
from tests.factories import user_session

BASE = "/api/v1/prompt-templates"
FEW_SHOT = next(t for t in BUILTIN_TEMPLATES if t.name == "few-shot")
ROLE = next(t for t in BUILTIN_TEMPLATES if t.name == "role-based")


async def _create(client, user, **overrides):
    body = {
        "name": "greeting",
        "body": "Say hello to {{ name }} in {{ language | upper }}.",
        "variables": ["name", "language"],
        **overrides,
    }
    return await client.post(BASE, json=body, headers=user.headers)


async def test_builtin_templates_are_listed_for_everyone(client):
    user = await user_session(client)
    response = await client.get(BASE, headers=user.headers)
    assert response.status_code == 200
    names = [t["name"] for t in response.json()["builtin"]]
    assert names == ["plain", "few-shot", "chain-of-thought", "role-based"]
    assert response.json()["items"] == []


async def test_listing_needs_a_login(client):
    response = await client.get(BASE)
    assert response.status_code == 401


async def test_builtin_few_shot_renders_examples_then_query(client):
    user = await user_session(client)
    response = await client.post(
        f"{BASE}/{FEW_SHOT.id}/render",
        json={"variables": {"examples": "Input: 2+2\nAnswer: 4", "query": "3+3"}},
        headers=user.headers,
    )
    assert response.status_code == 200
    text = response.json()["text"]
    assert text.index("Answer: 4") < text.index("Input: 3+3")
    assert text.endswith("Answer:")


async def test_builtin_role_based_renders_role_context_task(client):
    user = await user_session(client)
    response = await client.post(
        f"{BASE}/{ROLE.id}/render",
        json={"variables": {"role": "a tax advisor", "context": "Ctx.", "task": "Do it."}},
        headers=user.headers,
    )
    assert response.status_code == 200
    assert response.json()["text"] == "You are a tax advisor.\n\nContext:\nCtx.\n\nTask:\nDo it."


async def test_builtin_templates_are_read_only(client):
    user = await user_session(client)
    response = await client.patch(
        f"{BASE}/{FEW_SHOT.id}", json={"name": "mine"}, headers=user.headers
    )
    assert response.status_code == 403
    assert response.json()["code"] == "builtin_template_read_only"


async def test_create_get_update_delete_own_template(client):
    user = await user_session(client)
    created = await _create(client, user)
    assert created.status_code == 201
    template = created.json()
    assert template["builtin"] is False
    assert template["variables"] == ["name", "language"]
    got = await client.get(f"{BASE}/{template['id']}", headers=user.headers)
    assert got.status_code == 200
    assert got.json()["body"] == template["body"]
    updated = await client.patch(
        f"{BASE}/{template['id']}",
        json={"body": "Hi {{ name }}.", "variables": ["name"], "description": "short"},
        headers=user.headers,
    )
    assert updated.status_code == 200
    assert updated.json()["variables"] == ["name"]
    assert updated.json()["description"] == "short"
    listed = (await client.get(BASE, headers=user.headers)).json()
    assert [t["id"] for t in listed["items"]] == [template["id"]]
    deleted = await client.delete(f"{BASE}/{template['id']}", headers=user.headers)
    assert deleted.status_code == 204
    gone = await client.get(f"{BASE}/{template['id']}", headers=user.headers)
    assert gone.status_code == 404


async def test_render_own_template(client):
    user = await user_session(client)
    template = (await _create(client, user)).json()
    response = await client.post(
        f"{BASE}/{template['id']}/render",
        json={"variables": {"name": "Ada", "language": "french"}},
        headers=user.headers,
    )
    assert response.status_code == 200
    assert response.json()["text"] == "Say hello to Ada in FRENCH."


async def test_render_names_missing_and_unknown_variables(client):
    user = await user_session(client)
    template = (await _create(client, user)).json()
    response = await client.post(
        f"{BASE}/{template['id']}/render",
        json={"variables": {"name": "Ada", "colour": "red"}},
        headers=user.headers,
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "template_variables_invalid"
    assert "missing: language" in body["detail"]
    assert "unknown: colour" in body["detail"]
    assert {f["field"] for f in body["fields"]} == {"variables.language", "variables.colour"}


async def test_undeclared_placeholder_is_refused(client):
    user = await user_session(client)
    response = await _create(client, user, variables=["name"])
    assert response.status_code == 422
    assert response.json()["code"] == "template_variables_mismatch"
    assert "used but not declared: language" in response.json()["detail"]


async def test_declared_but_unused_variable_is_refused(client):
    user = await user_session(client)
    response = await _create(client, user, variables=["name", "language", "tone"])
    assert response.status_code == 422
    assert "declared but not used in the body: tone" in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ name.__class__ }}",
        "{{ name['__class__'] }}",
        "{{ cycler.__init__.__globals__ }}",
        "{% for x in range(10) %}{{ name }}{% endfor %}",
        "{{ lipsum() }}",
        "{{ name | attr('__class__') }}",
        "{% set x = name %}{{ x }}",
    ],
)
async def test_unsafe_templates_are_refused(client, body):
    user = await user_session(client)
    response = await _create(client, user, body=body, variables=["name"])
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_template"


async def test_syntax_error_is_refused_with_its_line(client):
    user = await user_session(client)
    response = await _create(client, user, body="ok\n{{ name ", variables=["name"])
    assert response.status_code == 422
    assert "line 2" in response.json()["detail"]


async def test_variable_values_are_text_not_templates(client):
    user = await user_session(client)
    template = (await _create(client, user, body="{{ name }}", variables=["name"])).json()
    response = await client.post(
        f"{BASE}/{template['id']}/render",
        json={"variables": {"name": "{{ ''.__class__ }}"}},
        headers=user.headers,
    )
    assert response.status_code == 200
    assert response.json()["text"] == "{{ ''.__class__ }}"


async def test_other_users_templates_are_404(client):
    owner = await user_session(client)
    other = await user_session(client)
    template = (await _create(client, owner)).json()
    for method, path, body in [
        ("GET", f"{BASE}/{template['id']}", None),
        ("PATCH", f"{BASE}/{template['id']}", {"name": "x"}),
        ("DELETE", f"{BASE}/{template['id']}", None),
        ("POST", f"{BASE}/{template['id']}/render", {"variables": {}}),
    ]:
        response = await client.request(method, path, json=body, headers=other.headers)
        assert response.status_code == 404, (method, path)
        assert response.json()["code"] == "prompt_template_not_found"


async def test_unknown_template_is_404(client):
    user = await user_session(client)
    response = await client.get(f"{BASE}/{uuid.uuid4()}", headers=user.headers)
    assert response.status_code == 404


async def test_duplicate_name_is_409(client):
    user = await user_session(client)
    assert (await _create(client, user)).status_code == 201
    response = await _create(client, user)
    assert response.status_code == 409
    assert response.json()["code"] == "template_name_taken"


async def test_invalid_variable_name_is_422(client):
    user = await user_session(client)
    response = await _create(client, user, body="{{ Name }}", variables=["Name"])
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"].startswith("variables")


async def test_too_long_body_is_422(client, platform):
    user = await user_session(client)
    limit = platform.apps["inference"].state.inference.settings.prompt_template_max_chars
    response = await _create(client, user, body="x" * (limit + 1), variables=[])
    assert response.status_code == 422
    assert "longer than" in response.json()["detail"]


async def test_rendered_prompt_is_capped(client, platform):
    user = await user_session(client)
    settings = platform.apps["inference"].state.inference.settings
    repeat = settings.prompt_rendered_max_chars // settings.prompt_variable_max_chars + 1
    template = (await _create(client, user, body="{{ name }}" * repeat, variables=["name"])).json()
    response = await client.post(
        f"{BASE}/{template['id']}/render",
        json={"variables": {"name": "y" * settings.prompt_variable_max_chars}},
        headers=user.headers,
    )
    assert response.status_code == 422
    assert response.json()["code"] == "template_render_failed"


async def test_update_refuses_explicit_null(client):
    user = await user_session(client)
    template = (await _create(client, user)).json()
    response = await client.patch(
        f"{BASE}/{template['id']}", json={"body": None}, headers=user.headers
    )
    assert response.status_code == 422


async def test_variables_left_out_are_the_placeholders(client):
    user = await user_session(client)
    response = await client.post(
        BASE,
        json={"name": "derived", "body": "{{ b }} then {{ a }} and {{ b | trim }}"},
        headers=user.headers,
    )
    assert response.status_code == 201
    assert response.json()["variables"] == ["b", "a"]


async def test_if_blocks_render_conditionally(client):
    user = await user_session(client)
    template = (
        await _create(
            client,
            user,
            body="Q: {{ question }}{% if hint %} (hint: {{ hint }}){% endif %}",
            variables=["question", "hint"],
        )
    ).json()
    with_hint = await client.post(
        f"{BASE}/{template['id']}/render",
        json={"variables": {"question": "2+2?", "hint": "even"}},
        headers=user.headers,
    )
    assert with_hint.json()["text"] == "Q: 2+2? (hint: even)"
    without = await client.post(
        f"{BASE}/{template['id']}/render",
        json={"variables": {"question": "2+2?", "hint": ""}},
        headers=user.headers,
    )
    assert without.json()["text"] == "Q: 2+2?"


async def test_update_checks_the_body_against_the_stored_variables(client):
    user = await user_session(client)
    template = (await _create(client, user)).json()
    response = await client.patch(
        f"{BASE}/{template['id']}", json={"body": "only {{ name }}"}, headers=user.headers
    )
    assert response.status_code == 422
    assert "declared but not used in the body: language" in response.json()["detail"]


async def test_nul_in_a_template_is_refused_naming_the_field(client):
    user = await user_session(client)
    response = await _create(client, user, body="a\x00{{ name }}", variables=["name"])
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "body"
