"""Creating a fine-tune: who may, and datasets refused with line numbers before any job."""

from __future__ import annotations

import pytest

from tests.factories import user_session
from tests.models_hub.fine_tunes.conftest import MEMORISE, chat_line, jsonl, start_fine_tune


async def test_a_fine_tune_is_queued_with_its_dataset_checked(client, owner, base):
    response = await start_fine_tune(client, owner, base["id"], validation=MEMORISE)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued"
    assert job["queue_position"] == 1
    assert job["base_version_id"] == base["version_id"]
    assert job["datasets"]["train"]["examples"] == 4
    assert job["datasets"]["train"]["tokens"] > 0
    assert len(job["datasets"]["train"]["sha256"]) == 64
    assert job["datasets"]["validation"]["examples"] == 4

    second = await start_fine_tune(client, owner, base["id"])
    assert second.json()["queue_position"] == 2
    assert (await client.get(f"/api/v1/fine-tunes/{job['id']}", headers=owner.headers)).json()[
        "queue_position"
    ] == 1
    mine = (await client.get("/api/v1/fine-tunes", headers=owner.headers)).json()
    assert [j["id"] for j in mine["items"]] == [second.json()["id"], job["id"]]
    per_model = await client.get(f"/api/v1/models/{base['id']}/fine-tunes", headers=owner.headers)
    assert len(per_model.json()["items"]) == 2


@pytest.mark.parametrize(
    ("rows", "line", "words"),
    [
        ([chat_line(), "{not json", chat_line()], 2, "not valid JSON"),
        ([chat_line(), chat_line(), {"messages": [{"role": "robot", "content": "x"}]}], 3, "role"),
        ([{"text": "   "}], 1, "empty"),
        ([chat_line(), {"prompt": "a", "completion": "b"}], 2, '"messages"'),
        ([{"messages": [{"role": "user", "content": "only a question"}]}], 1, "no assistant"),
        ([chat_line(), chat_line(answer="word " * 200)], 2, "max_seq_length"),
    ],
)
async def test_malformed_lines_are_named_in_a_422(client, owner, base, rows, line, words):
    response = await start_fine_tune(client, owner, base["id"], jsonl(rows))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "invalid_dataset"
    assert f"line {line} " in body["detail"]
    assert words in body["detail"]
    assert body["fields"][0]["field"] == f"training_file line {line}"
    listed = await client.get("/api/v1/fine-tunes", headers=owner.headers)
    assert listed.json()["items"] == []  # no job was started


async def test_a_bad_validation_file_names_its_lines_too(client, owner, base):
    response = await start_fine_tune(client, owner, base["id"], validation=b'{"text": 1}')
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "validation_file line 1"


async def test_a_file_past_the_size_cap_is_413(client, owner, base, hub_limits):
    hub_limits(finetune_max_file_bytes=2048)
    response = await start_fine_tune(client, owner, base["id"], jsonl([chat_line()] * 40))
    assert response.status_code == 413, response.text


async def test_hyperparameters_are_bounded_by_settings(client, owner, base):
    response = await start_fine_tune(client, owner, base["id"], epochs=1000)
    assert response.status_code == 422
    assert "epochs must be at most" in response.json()["detail"]
    response = await start_fine_tune(client, owner, base["id"], method="qlora")
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "method"


async def test_only_the_owner_may_fine_tune(client, platform, owner, base):
    from tests.inference.conftest import ready_model

    stranger = await user_session(client, "stranger")
    hidden = await start_fine_tune(client, stranger, base["id"])  # a private model
    assert hidden.status_code == 404
    public = await ready_model(platform, owner, _folder(platform, base), slug="pub")
    refused = await start_fine_tune(client, stranger, public["id"])
    assert refused.status_code == 403
    job = (await start_fine_tune(client, owner, base["id"])).json()
    other = await client.get(f"/api/v1/fine-tunes/{job['id']}", headers=stranger.headers)
    assert other.status_code == 404


async def test_the_per_user_limit_is_enforced(client, owner, base, hub_limits):
    hub_limits(finetune_max_concurrent_per_user=1)
    assert (await start_fine_tune(client, owner, base["id"])).status_code == 202
    second = await start_fine_tune(client, owner, base["id"])
    assert second.status_code == 429
    assert second.json()["code"] == "fine_tune_limit"


def _folder(platform, base):  # type: ignore[no-untyped-def]
    storage = platform.common["data_dir"] / "storage"
    return storage / f"models/{base['id']}/versions/{base['version_id']}/original"
