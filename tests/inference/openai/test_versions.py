"""A model named `<owner>/<slug>@<n>` is served at its version n, whichever one is active."""

from __future__ import annotations

from tests.inference.conftest import activate_new_version
from tests.inference.openai.test_openai_api import PROMPT, greedy_reference


async def _greedy(client, headers, model):  # type: ignore[no-untyped-def]
    return await client.post(
        "/v1/completions",
        json={"model": model, "prompt": PROMPT, "temperature": 0, "max_tokens": 12},
        headers=headers,
    )


async def test_a_version_is_served_by_its_number_beside_the_active_one(  # type: ignore[no-untyped-def]
    client, platform, owner, llama, tiny_llama_dir, tiny_gpt2_dir
):
    await activate_new_version(platform, llama, tiny_gpt2_dir)

    pinned = await _greedy(client, owner.headers, f"{llama['ref']}@1")
    active = await _greedy(client, owner.headers, llama["ref"])

    assert pinned.status_code == 200, pinned.text
    assert pinned.json()["model"] == f"{llama['ref']}@1"
    assert pinned.json()["choices"][0]["text"] == greedy_reference(tiny_llama_dir, PROMPT, 12)
    assert active.json()["model"] == llama["ref"]
    assert active.json()["choices"][0]["text"] == greedy_reference(tiny_gpt2_dir, PROMPT, 12)


async def test_a_version_that_is_not_ready_is_not_found(client, owner, llama):  # type: ignore[no-untyped-def]
    for name in (f"{llama['ref']}@7", f"{llama['ref']}@0", f"{llama['ref']}@x"):
        response = await _greedy(client, owner.headers, name)
        assert response.status_code == 404, (name, response.text)
    assert "no ready version 7" in (await _greedy(client, owner.headers, f"{llama['ref']}@7")).text
