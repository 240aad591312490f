"""Upload sessions on the local storage backend: create, send parts (any order, again),
status, complete into a version, refusals, abort, expiry."""

from __future__ import annotations

import pickle
from datetime import timedelta

import pytest
from sqlalchemy import update

from services.models_hub.models import UploadSession
from services.models_hub.worker import sweep
from shared.db import session_scope, utcnow
from tests.factories import user_session
from tests.models_hub.conftest import create_model, developer
from tests.models_hub.versions.upload_sessions import (
    CONFIG,
    PART,
    TOKENIZER,
    base,
    complete,
    crc32c,
    create_session,
    hf_model,
    parts_of,
    put_part,
    send_all,
    sha256,
    weights,
)


def stored_files(platform) -> list[str]:
    root = platform.common["data_dir"] / "storage"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def part_files(platform) -> list[str]:
    """The parts the local backend holds whole (a marker file per part beside the data)."""
    return [
        name
        for name in stored_files(platform)
        if name.startswith(".multipart/") and name.rsplit("/", 1)[1].isdigit()
    ]


@pytest.fixture
async def owner_and_model(client):
    dev = await developer(client)
    model = await create_model(client, dev)
    return dev, model


async def test_parts_in_any_order_and_again_complete_into_a_version(
    client, platform, owner_and_model
):
    dev, model = owner_and_model
    files = hf_model()
    created = await create_session(client, dev, model["id"], files)
    assert created.status_code == 201, created.text
    session = created.json()
    assert session["status"] == "open"
    assert session["part_size"] == PART
    assert session["version_id"] is None
    assert session["total_bytes"] == sum(len(c) for c in files.values())
    assert session["received_bytes"] == 0
    by_name = {f["name"]: f for f in session["files"]}
    weights_file = by_name["model.safetensors"]
    assert weights_file["part_count"] == 3
    assert weights_file["missing_offsets"] == [0, PART, 2 * PART]
    assert weights_file["received_offsets"] == []
    assert weights_file["sha256"] == sha256(files["model.safetensors"])

    # Out of order, and one part twice: the second copy replaces the first.
    parts = parts_of(files["model.safetensors"])
    for offset, chunk in [parts[2], parts[0], parts[2]]:
        sent = await put_part(
            client, dev, model["id"], session["id"], "model.safetensors", offset, chunk
        )
        assert sent.status_code == 200, sent.text
        assert sent.json() == {
            "name": "model.safetensors",
            "offset": offset,
            "length": len(chunk),
            "crc32c": crc32c(chunk),
        }
    status = (await client.get(f"{base(model['id'])}/{session['id']}", headers=dev.headers)).json()
    weights_file = {f["name"]: f for f in status["files"]}["model.safetensors"]
    assert weights_file["received_offsets"] == [0, 2 * PART]
    assert weights_file["missing_offsets"] == [PART]
    assert status["received_bytes"] == len(parts[0][1]) + len(parts[2][1])

    await put_part(client, dev, model["id"], session["id"], "model.safetensors", *parts[1])
    await send_all(
        client,
        dev,
        model["id"],
        session["id"],
        {"config.json": CONFIG, "tokenizer.json": TOKENIZER},
    )
    done = await complete(client, dev, model["id"], session["id"])
    assert done.status_code == 202, done.text
    version = done.json()
    assert version["status"] == "validating"
    assert version["format"] == "safetensors"
    assert {f["name"]: f["sha256"] for f in version["files"]} == {
        name: sha256(content) for name, content in files.items()
    }
    assert version["total_size"] == session["total_bytes"]

    download = await client.get(
        f"/api/v1/models/{model['id']}/versions/{version['id']}/files/model.safetensors"
    )
    assert download.content == files["model.safetensors"]
    assert part_files(platform) == []
    final = (await client.get(f"{base(model['id'])}/{session['id']}", headers=dev.headers)).json()
    assert final["status"] == "completed"
    assert final["version_id"] == version["id"]
    assert final["received_bytes"] == final["total_bytes"]

    # Completing again (an answer lost on the way) answers with the same version.
    again = await complete(client, dev, model["id"], session["id"])
    assert again.status_code == 202
    assert again.json()["id"] == version["id"]
    late = await put_part(client, dev, model["id"], session["id"], "config.json", 0, CONFIG)
    assert late.status_code == 409
    assert late.json()["code"] == "upload_session_closed"


@pytest.mark.parametrize(
    ("offset", "body", "code"),
    [
        (1000, b"x" * 10, "invalid_part_offset"),  # not a multiple of the part size
        (3 * PART, b"x" * 10, "invalid_part_offset"),  # past the file's end
        (0, b"x" * 10, "invalid_part_length"),  # shorter than the part
        (2 * PART, b"x" * (PART + 1), "invalid_part_length"),  # longer than the last part
    ],
    ids=["unaligned", "past-the-end", "short", "long-last"],
)
async def test_a_wrong_offset_or_length_is_refused(
    client, platform, owner_and_model, offset, body, code
):
    dev, model = owner_and_model
    session = (await create_session(client, dev, model["id"], hf_model())).json()
    response = await put_part(
        client, dev, model["id"], session["id"], "model.safetensors", offset, body
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    assert "part" in response.json()["detail"]
    assert part_files(platform) == []


async def test_a_part_of_an_unknown_file_is_404(client, owner_and_model):
    dev, model = owner_and_model
    session = (await create_session(client, dev, model["id"], hf_model())).json()
    response = await put_part(client, dev, model["id"], session["id"], "other.json", 0, b"{}")
    assert response.status_code == 404
    assert response.json()["code"] == "upload_file_not_found"
    assert "config.json" in response.json()["detail"]


async def test_completing_with_parts_missing_is_409_listing_them(client, owner_and_model):
    dev, model = owner_and_model
    files = hf_model()
    session = (await create_session(client, dev, model["id"], files)).json()
    first = parts_of(files["model.safetensors"])[0]
    await put_part(client, dev, model["id"], session["id"], "model.safetensors", *first)
    await send_all(client, dev, model["id"], session["id"], {"config.json": CONFIG})
    response = await complete(client, dev, model["id"], session["id"])
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "upload_incomplete"
    assert f"'model.safetensors' at offsets {PART}, {2 * PART}" in body["detail"]
    assert "'tokenizer.json' at offsets 0" in body["detail"]
    # Still open: the missing parts can follow.
    await send_all(client, dev, model["id"], session["id"], {"tokenizer.json": TOKENIZER})
    for offset, chunk in parts_of(files["model.safetensors"])[1:]:
        await put_part(client, dev, model["id"], session["id"], "model.safetensors", offset, chunk)
    assert (await complete(client, dev, model["id"], session["id"])).status_code == 202


async def test_a_checksum_mismatch_is_422_and_keeps_nothing(client, platform, owner_and_model):
    dev, model = owner_and_model
    files = hf_model()
    session = (await create_session(client, dev, model["id"], files)).json()
    corrupted = dict(files)
    data = bytearray(files["model.safetensors"])
    data[-1] ^= 0xFF  # a flipped bit in the last part
    corrupted["model.safetensors"] = bytes(data)
    await send_all(client, dev, model["id"], session["id"], corrupted)
    response = await complete(client, dev, model["id"], session["id"])
    assert response.status_code == 422
    assert response.json()["code"] == "checksum_mismatch"
    assert "model.safetensors" in response.json()["detail"]
    assert stored_files(platform) == []
    assert (await client.get(f"/api/v1/models/{model['id']}/versions")).json() == []
    status = (await client.get(f"{base(model['id'])}/{session['id']}", headers=dev.headers)).json()
    assert status["status"] == "aborted"


async def test_a_refused_file_is_422_at_its_first_part(client, platform, owner_and_model):
    dev, model = owner_and_model
    checkpoint = pickle.dumps({"w": list(range(1000))}, protocol=4)
    session = (
        await create_session(client, dev, model["id"], {"model.safetensors": checkpoint})
    ).json()
    response = await put_part(
        client, dev, model["id"], session["id"], "model.safetensors", 0, checkpoint
    )
    assert response.status_code == 422
    assert response.json()["code"] == "pickle_refused"
    assert part_files(platform) == []


async def test_a_set_of_files_that_is_no_model_is_refused_at_completion(
    client, platform, owner_and_model
):
    dev, model = owner_and_model
    files = {"config.json": CONFIG, "model.safetensors": weights(0.1)}  # no tokenizer
    session = (await create_session(client, dev, model["id"], files)).json()
    await send_all(client, dev, model["id"], session["id"], files)
    response = await complete(client, dev, model["id"], session["id"])
    assert response.status_code == 422
    assert response.json()["code"] == "incomplete_model"
    assert stored_files(platform) == []


async def test_an_archive_session_is_unpacked(client, platform, owner_and_model):
    from tests.models_hub.conftest import archive_bytes

    dev, model = owner_and_model
    members = {
        "config.json": CONFIG,
        "model.safetensors": weights(0.1),
        "tokenizer.json": TOKENIZER,
    }
    archive = archive_bytes("tar", {f"tiny/{k}": v for k, v in members.items()})
    files = {"model.tar": archive}
    session = (await create_session(client, dev, model["id"], files)).json()
    await send_all(client, dev, model["id"], session["id"], files)
    response = await complete(client, dev, model["id"], session["id"])
    assert response.status_code == 202, response.text
    assert {f["name"] for f in response.json()["files"]} == set(members)
    version_files = [n for n in stored_files(platform) if "/original/" in n]
    assert sorted(n.rsplit("/", 1)[1] for n in version_files) == sorted(members)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"files": [{"name": "model.safetensors", "size": 10}], "part_size": 1024}, 422, None),
        ({"files": [{"name": "a/b.json", "size": 10}]}, 422, None),
        (
            {"files": [{"name": "x.json", "size": 1}, {"name": "x.json", "size": 1}]},
            422,
            "file_refused",
        ),
        (
            {"files": [{"name": "model.tar", "size": 10}, {"name": "config.json", "size": 10}]},
            422,
            "archive_refused",
        ),
        ({"files": [{"name": "big.safetensors", "size": 3 * 1024**3}]}, 413, None),
        (
            {"files": [{"name": "m.safetensors", "size": 10}], "part_size": 1024**3},
            422,
            "invalid_part_size",
        ),
    ],
    ids=["part-too-small", "folder", "twice", "archive-with-others", "too-large", "part-too-large"],
)
async def test_a_session_that_cannot_succeed_is_refused_at_creation(
    client, platform, owner_and_model, body, status, code
):
    dev, model = owner_and_model
    response = await client.post(base(model["id"]), json=body, headers=dev.headers)
    assert response.status_code == status, response.text
    if code:
        assert response.json()["code"] == code
    assert stored_files(platform) == []


async def test_sessions_of_others_do_not_exist(client, owner_and_model):
    dev, model = owner_and_model
    session = (await create_session(client, dev, model["id"], hf_model())).json()
    stranger = await developer(client)
    created = await create_session(client, stranger, model["id"], hf_model())
    assert created.status_code == 404
    url = f"{base(model['id'])}/{session['id']}"
    assert (await client.get(url, headers=stranger.headers)).status_code == 404
    assert (await client.delete(url, headers=stranger.headers)).status_code == 404
    assert (await complete(client, stranger, model["id"], session["id"])).status_code == 404
    refused = await put_part(client, stranger, model["id"], session["id"], "config.json", 0, CONFIG)
    assert refused.status_code == 404
    assert refused.json()["code"] == "upload_session_not_found"
    anonymous = await client.get(url)
    assert anonymous.status_code == 401


async def test_each_session_counts_once_against_the_daily_limit(
    client, hub_limits, owner_and_model
):
    dev, model = owner_and_model
    hub_limits(max_uploads_per_day=2)
    files = {"config.json": CONFIG, "model.safetensors": weights(0.1), "tokenizer.json": TOKENIZER}
    first = (await create_session(client, dev, model["id"], files)).json()
    assert (await create_session(client, dev, model["id"], files)).status_code == 201
    third = await create_session(client, dev, model["id"], files)
    assert third.status_code == 429
    assert third.json()["code"] == "upload_limit"
    # Completing a session does not count it again.
    await send_all(client, dev, model["id"], first["id"], files)
    assert (await complete(client, dev, model["id"], first["id"])).status_code == 202
    assert (await create_session(client, dev, model["id"], files)).status_code == 429


async def test_abort_removes_the_parts(client, platform, owner_and_model):
    dev, model = owner_and_model
    files = hf_model()
    session = (await create_session(client, dev, model["id"], files)).json()
    first = parts_of(files["model.safetensors"])[0]
    await put_part(client, dev, model["id"], session["id"], "model.safetensors", *first)
    assert part_files(platform)
    url = f"{base(model['id'])}/{session['id']}"
    assert (await client.delete(url, headers=dev.headers)).status_code == 204
    assert stored_files(platform) == []
    status = (await client.get(url, headers=dev.headers)).json()
    assert status["status"] == "aborted"
    refused = await put_part(client, dev, model["id"], session["id"], "model.safetensors", *first)
    assert refused.status_code == 409
    assert refused.json()["code"] == "upload_session_closed"
    assert (await complete(client, dev, model["id"], session["id"])).status_code == 409
    assert (await client.delete(url, headers=dev.headers)).status_code == 204


async def test_the_sweeper_expires_sessions_and_removes_their_parts(
    client, platform, owner_and_model
):
    dev, model = owner_and_model
    files = hf_model()
    kept = (await create_session(client, dev, model["id"], files)).json()
    old = (await create_session(client, dev, model["id"], files)).json()
    for session in (kept, old):
        first = parts_of(files["model.safetensors"])[0]
        await put_part(client, dev, model["id"], session["id"], "model.safetensors", *first)
    async with session_scope(platform.sessionmaker) as db:
        await db.execute(
            update(UploadSession)
            .where(UploadSession.id == old["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    url = f"{base(model['id'])}/{old['id']}"
    # Expired as soon as its time is up, before the sweeper has run.
    assert (await client.get(url, headers=dev.headers)).json()["status"] == "expired"
    late = await put_part(client, dev, model["id"], old["id"], "config.json", 0, CONFIG)
    assert late.status_code == 409

    hub = platform.apps["models_hub"].state.hub
    result = await sweep({"hub": hub, "sessionmaker": platform.sessionmaker})
    assert result["upload_sessions_expired"] == 1
    # Only the expired session's parts are gone.
    assert len(part_files(platform)) == 1
    assert (await client.get(url, headers=dev.headers)).json()["status"] == "expired"
    kept_now = (await client.get(f"{base(model['id'])}/{kept['id']}", headers=dev.headers)).json()
    assert kept_now["status"] == "open"


async def test_a_part_that_arrives_as_its_session_expires_is_not_kept(
    client, platform, owner_and_model
):
    dev, model = owner_and_model
    files = hf_model()
    session = (await create_session(client, dev, model["id"], files)).json()
    offset, data = parts_of(files["model.safetensors"])[1]

    async def expiring_mid_part():
        yield data[: len(data) // 2]
        async with session_scope(platform.sessionmaker) as db:
            await db.execute(
                update(UploadSession)
                .where(UploadSession.id == session["id"])
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
        yield data[len(data) // 2 :]

    late = await client.put(
        f"{base(model['id'])}/{session['id']}/files/model.safetensors",
        params={"offset": offset},
        content=expiring_mid_part(),
        headers={**dev.headers, "Content-Length": str(len(data))},
    )
    assert late.status_code == 409
    assert late.json()["code"] == "upload_session_closed"
    assert "expired" in late.json()["detail"]
    status = (await client.get(f"{base(model['id'])}/{session['id']}", headers=dev.headers)).json()
    assert status["status"] == "expired"
    assert status["received_bytes"] == 0


async def test_a_deleted_models_sessions_are_swept(client, platform, owner_and_model):
    dev, model = owner_and_model
    files = hf_model()
    session = (await create_session(client, dev, model["id"], files)).json()
    first = parts_of(files["model.safetensors"])[0]
    await put_part(client, dev, model["id"], session["id"], "model.safetensors", *first)
    deleted = await client.delete(f"/api/v1/models/{model['id']}", headers=dev.headers)
    assert deleted.status_code == 204
    hub = platform.apps["models_hub"].state.hub
    result = await sweep({"hub": hub, "sessionmaker": platform.sessionmaker})
    assert result["upload_sessions_expired"] == 1
    assert part_files(platform) == []


async def test_the_one_request_upload_still_works_beside_sessions(client, owner_and_model):
    from tests.models_hub.conftest import as_file, upload

    dev, model = owner_and_model
    files = hf_model()
    await create_session(client, dev, model["id"], files)
    response = await upload(client, dev, model["id"], [as_file(n, c) for n, c in files.items()])
    assert response.status_code == 202, response.text
    assert response.json()["number"] == 1


async def test_a_user_who_is_not_a_developer_may_not_open_sessions(client):
    owner = await developer(client)
    model = await create_model(client, owner)
    user = await user_session(client)
    response = await create_session(client, user, model["id"], hf_model())
    assert response.status_code == 404


async def test_the_gateway_admits_parts_past_its_body_limit(platform, client, owner_and_model):
    dev, model = owner_and_model
    files = hf_model()
    session = (await create_session(client, dev, model["id"], files)).json()
    first = parts_of(files["model.safetensors"])[0]
    async with platform.extra_gateway(max_body_bytes=1 << 20) as small:
        sent = await put_part(small, dev, model["id"], session["id"], "model.safetensors", *first)
        assert sent.status_code == 200, sent.text
        # Other bodies still meet the limit.
        refused = await small.patch(
            "/api/v1/users/me", content=b"x" * (2 << 20), headers=dev.headers
        )
        assert refused.status_code == 413


async def test_a_corrupted_part_sent_again_replaces_the_first_copy(client, owner_and_model):
    dev, model = owner_and_model
    files = hf_model()
    session = (await create_session(client, dev, model["id"], files)).json()
    corrupted = bytearray(files["model.safetensors"])
    corrupted[PART + 10] ^= 0xFF  # in the second part
    await send_all(
        client, dev, model["id"], session["id"], {**files, "model.safetensors": bytes(corrupted)}
    )
    # The client notices (the part's CRC32C in the answer differs from its own) and sends the
    # part again, after the parts behind it were stored.
    second = parts_of(files["model.safetensors"])[1]
    again = await put_part(client, dev, model["id"], session["id"], "model.safetensors", *second)
    assert again.json()["crc32c"] == crc32c(second[1])
    done = await complete(client, dev, model["id"], session["id"])
    assert done.status_code == 202, done.text
    by_name = {f["name"]: f["sha256"] for f in done.json()["files"]}
    assert by_name["model.safetensors"] == sha256(files["model.safetensors"])


async def test_the_sweeper_leaves_a_completion_under_way_and_ends_a_dead_one(
    client, platform, owner_and_model
):
    dev, model = owner_and_model
    files = hf_model()
    session = (await create_session(client, dev, model["id"], files)).json()
    await send_all(client, dev, model["id"], session["id"], files)
    hub = platform.apps["models_hub"].state.hub

    async def mark(completing_since) -> None:
        async with session_scope(platform.sessionmaker) as db:
            await db.execute(
                update(UploadSession)
                .where(UploadSession.id == session["id"])
                .values(
                    completing_since=completing_since,
                    expires_at=utcnow() - timedelta(seconds=1),
                )
            )

    # Past its expiry, but being completed right now: left alone.
    await mark(utcnow())
    result = await sweep({"hub": hub, "sessionmaker": platform.sessionmaker})
    assert result["upload_sessions_expired"] == 0
    assert part_files(platform)
    # Its completion began longer ago than an upload may take: its process died.
    await mark(utcnow() - timedelta(seconds=hub.settings.stale_upload_seconds + 60))
    result = await sweep({"hub": hub, "sessionmaker": platform.sessionmaker})
    assert result["upload_sessions_expired"] == 1
    assert part_files(platform) == []
    url = f"{base(model['id'])}/{session['id']}"
    assert (await client.get(url, headers=dev.headers)).json()["status"] == "aborted"
