"""Fine-tunes end to end: the real fine-tune worker trains, the new version validates and serves."""

from __future__ import annotations

import asyncio

import pytest

from tests.models_hub.fine_tunes.conftest import (
    ANSWER,
    MEMORISE,
    QUESTION,
    parse_sse,
    start_fine_tune,
)

# Training and validation each start a child interpreter that imports torch.
pytestmark = pytest.mark.timeout(300)

LORA = {"method": "lora", "learning_rate": "0.03", "lora_rank": "16", "lora_alpha": "32"}


async def _job(client, user, job_id):
    response = await client.get(f"/api/v1/fine-tunes/{job_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("params", [{}, LORA], ids=["full", "lora"])
async def test_a_fine_tune_memorises_and_the_new_version_serves_it(
    client, owner, base, run_fine_tunes, run_jobs, params
):
    created = await start_fine_tune(client, owner, base["id"], validation=MEMORISE, **params)
    assert created.status_code == 202, created.text
    assert await run_fine_tunes() == 1

    job = await _job(client, owner, created.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    losses = [m["train_loss"] for m in job["metrics"]]
    assert len(losses) == 12
    assert losses[-1] < losses[0] / 4
    assert job["metrics"][-1]["validation_loss"] < 1.0
    assert job["progress"]["percent"] == 100

    versions = f"/api/v1/models/{base['id']}/versions"
    result = f"{versions}/{job['result_version_id']}"
    version = (await client.get(result, headers=owner.headers)).json()
    assert version["status"] == "validating"
    assert version["number"] == 2
    assert version["parent_version_id"] == base["version_id"]
    assert version["lineage"]["dataset_sha256"] == job["datasets"]["train"]["sha256"]
    assert version["lineage"]["hyperparameters"]["method"] == job["method"]
    assert version["lineage"]["final_train_loss"] == pytest.approx(losses[-1])
    assert {f["kind"] for f in version["files"]} <= {"safetensors", "json", "text"}

    await run_jobs()  # the normal validation of the new version
    version = (await client.get(f"{versions}/{version['id']}", headers=owner.headers)).json()
    assert version["status"] == "ready", version["error"]
    activated = await client.post(f"{versions}/{version['id']}/activate", headers=owner.headers)
    assert activated.status_code == 200

    answer = await client.post(
        "/v1/chat/completions",
        headers=owner.headers,
        json={
            "model": base["ref"],
            "messages": [{"role": "user", "content": QUESTION}],
            "temperature": 0,
            "max_tokens": 12,
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"].startswith(ANSWER[:22])

    tree = f"/api/v1/models/{base['id']}/lineage"
    lineage = (await client.get(tree, headers=owner.headers)).json()
    (root,) = lineage["roots"]
    assert root["id"] == base["version_id"]
    assert [child["id"] for child in root["children"]] == [version["id"]]
    assert root["children"][0]["is_active"] is True


async def test_progress_events_arrive_in_order_and_resume(client, owner, base, run_fine_tunes):
    created = await start_fine_tune(client, owner, base["id"], epochs=5)
    job_id = created.json()["id"]
    url = f"/api/v1/fine-tunes/{job_id}/events"

    async def read(headers):
        async with client.stream("GET", url, headers={**owner.headers, **headers}) as response:
            assert response.status_code == 200
            return parse_sse((await response.aread()).decode())

    live = asyncio.create_task(read({}))  # following while the job runs
    await run_fine_tunes()
    events = await asyncio.wait_for(live, 60)
    kinds = [(e["event"], e["data"]["status"]) for e in events]
    assert kinds[0] == ("status", "queued")
    assert kinds[1] == ("status", "running")
    assert kinds[-1] == ("status", "succeeded")
    steps = [e["data"]["progress"]["step"] for e in events if e["event"] == "progress"]
    assert steps == [1, 2, 3, 4, 5]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))

    resumed = await read({"Last-Event-ID": ids[3]})
    assert [e["id"] for e in resumed] == ids[4:]
    replayed = await read({})
    assert [e["id"] for e in replayed] == ids
    bad = await client.get(url, headers={**owner.headers, "Last-Event-ID": "nope"})
    assert bad.status_code == 400


async def test_cancel_stops_within_a_few_steps_and_keeps_no_version(
    client, platform, owner, base, run_fine_tunes
):
    created = await start_fine_tune(client, owner, base["id"], epochs=100, batch_size=1)
    job_id = created.json()["id"]
    worker = asyncio.create_task(run_fine_tunes())
    for _ in range(600):
        job = await _job(client, owner, job_id)
        if job["progress"].get("step", 0) >= 2:
            break
        await asyncio.sleep(0.1)
    cancelled = await client.post(f"/api/v1/fine-tunes/{job_id}/cancel", headers=owner.headers)
    assert cancelled.status_code == 200
    asked_at = cancelled.json()["progress"]["step"]
    await asyncio.wait_for(worker, 120)

    job = await _job(client, owner, job_id)
    assert job["status"] == "cancelled"
    assert "Cancelled" in job["error"]
    assert job["progress"]["step"] <= asked_at + 3
    assert job["result_version_id"] is None
    lineage = await client.get(f"/api/v1/models/{base['id']}/lineage", headers=owner.headers)
    assert [(v["number"], v["children"]) for v in lineage.json()["roots"]] == [(1, [])]
    stored = platform.common["data_dir"] / "storage" / f"models/{base['id']}/versions"
    assert sorted(p.name for p in stored.iterdir()) == [base["version_id"]]
    again = await client.post(f"/api/v1/fine-tunes/{job_id}/cancel", headers=owner.headers)
    assert again.status_code == 409


async def test_a_queued_fine_tune_cancels_at_once(client, owner, base):
    job = (await start_fine_tune(client, owner, base["id"])).json()
    cancelled = await client.post(f"/api/v1/fine-tunes/{job['id']}/cancel", headers=owner.headers)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
