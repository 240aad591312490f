"""`llmnet backup` and `llmnet restore`, as an operator runs them: a platform with users, an
uploaded model and posts is backed up, restored into a database that did not exist and empty
storage, and a platform started on fresh servers from it serves the same data."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from llmnet.launcher.embedded import start_redis
from shared.db import create_engine, create_sessionmaker
from shared.testing import drop_database
from tests.conftest import ADMIN_DATABASE_URL, serve_platform
from tests.factories import PASSWORD, login, user_session
from tests.feed.conftest import publish, worker_ctx  # noqa: F401 - fixture
from tests.inference.conftest import ready_model, tiny_llama_dir  # noqa: F401 - fixture
from tests.models_hub.conftest import (  # noqa: F401 - fixture
    create_model,
    developer,
    folder_files,
    hub_settings,
    run_jobs,
    upload,
)
from tests.shared.s3_server import ACCESS_KEY, REGION, SECRET_KEY, moto_s3_server

# A validation job (a sandboxed interpreter loading the model) and two platforms.
pytestmark = pytest.mark.timeout(300)


async def llmnet(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The `llmnet` command in a process of its own (off the loop the platform runs on)."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "llmnet.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def fresh_platform(database_url: str, data_dir: Path) -> AsyncIterator[Any]:
    """Every service on the restored database and storage, with a Redis of its own."""
    redis_server = await asyncio.to_thread(start_redis, data_dir / "servers", free_port())
    engine = create_engine(database_url, pool_size=2)
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        async with serve_platform(
            database_url, redis_server.url, data_dir, create_sessionmaker(engine), redis
        ) as platform:
            yield platform
    finally:
        await redis.aclose()
        await engine.dispose()
        await asyncio.to_thread(redis_server.stop)


async def test_a_restored_backup_serves_the_same_users_models_and_posts(  # type: ignore[no-untyped-def]
    client,
    platform,
    database_url,
    run_jobs,  # noqa: F811
    worker_ctx,  # noqa: F811
    tiny_llama_dir,  # noqa: F811
    tmp_path,
):
    dev = await developer(client, "modeler")
    reader = await user_session(client, "reader")
    model = await create_model(client, dev, name="Backed Up", visibility="public")
    uploaded = await upload(client, dev, model["id"], folder_files(tiny_llama_dir))
    assert uploaded.status_code == 202, uploaded.text
    assert await run_jobs() >= 1
    version_id = uploaded.json()["id"]
    posts = [
        await publish(client, worker_ctx, dev, model, prompt=prompt)
        for prompt in ("Say something about foxes.", "And about owls.")
    ]

    backup_dir = tmp_path / "backup"
    source = {
        "DATABASE_URL": database_url,
        "STORAGE_BACKEND": "local",
        "LLMNET_DATA_DIR": str(platform.common["data_dir"]),
    }
    saved = await llmnet("backup", str(backup_dir), env=source)
    assert saved.returncode == 0, saved.stderr
    assert "objects" in saved.stdout

    # A database name the server does not have yet, and an empty data directory.
    restored_url = database_url.rsplit("/", 1)[0] + "/" + database_url.rsplit("/", 1)[1] + "_r"
    data_dir = tmp_path / "restored"
    target = {
        "DATABASE_URL": restored_url,
        "STORAGE_BACKEND": "local",
        "LLMNET_DATA_DIR": str(data_dir),
    }
    try:
        loaded = await llmnet("restore", str(backup_dir), env=target)
        assert loaded.returncode == 0, loaded.stderr

        again = await llmnet("restore", str(backup_dir), env=target)
        assert again.returncode == 1
        assert "Refusing to restore over existing data" in again.stderr
        assert "--force" in again.stderr

        async with (
            fresh_platform(restored_url, data_dir) as restored,
            httpx.AsyncClient(base_url=restored.gateway_url, timeout=60) as api,
        ):
            for user in (dev, reader):
                tokens = await login(api, user.username, PASSWORD)
                assert tokens["access_token"]
            headers = {
                "Authorization": f"Bearer {(await login(api, dev.username))['access_token']}"
            }

            served = await api.get(f"/api/v1/models/{model['id']}", headers=headers)
            assert served.status_code == 200, served.text
            assert served.json()["name"] == "Backed Up"
            assert served.json()["active_version"]["id"] == version_id
            versions = await api.get(f"/api/v1/models/{model['id']}/versions", headers=headers)
            assert [v["id"] for v in versions.json()] == [version_id]
            for path in sorted(p for p in tiny_llama_dir.iterdir() if p.is_file()):
                download = await api.get(
                    f"/api/v1/models/{model['id']}/versions/{version_id}/files/{path.name}",
                    headers=headers,
                )
                assert download.status_code == 200, download.text
                assert download.content == path.read_bytes()

            timeline = await api.get(f"/api/v1/feed/models/{model['id']}", headers=headers)
            assert timeline.status_code == 200, timeline.text
            listed = {item["id"]: item for item in timeline.json()["items"]}
            assert set(listed) == {post["id"] for post in posts}
            for post in posts:
                assert listed[post["id"]]["content"] == post["content"]

            answer = await api.post(
                "/v1/chat/completions",
                headers=headers,
                json={
                    "model": model["ref"],
                    "messages": [{"role": "user", "content": "hi"}],
                    "max_tokens": 4,
                },
            )
            assert answer.status_code == 200, answer.text
    finally:
        await drop_database(ADMIN_DATABASE_URL, restored_url)


async def test_a_backup_moves_between_local_storage_and_an_s3_bucket(  # type: ignore[no-untyped-def]
    client,
    platform,
    database_url,
    tiny_llama_dir,  # noqa: F811
    tmp_path,
):
    owner = await developer(client, "s3owner")
    await ready_model(platform, owner, tiny_llama_dir)
    local = {
        "DATABASE_URL": database_url,
        "STORAGE_BACKEND": "local",
        "LLMNET_DATA_DIR": str(platform.common["data_dir"]),
    }
    assert (await llmnet("backup", str(tmp_path / "local"), env=local)).returncode == 0
    first = json.loads((tmp_path / "local" / "manifest.json").read_text())
    assert first["storage_backend"] == "local"
    assert {Path(o["key"]).name for o in first["objects"]} == {
        p.name for p in tiny_llama_dir.iterdir() if p.is_file()
    }

    restored_url = f"{database_url}_s3"
    with moto_s3_server() as endpoint:
        bucket = {
            "DATABASE_URL": restored_url,
            "STORAGE_BACKEND": "s3",
            "S3_ENDPOINT": endpoint,
            "S3_ACCESS_KEY": ACCESS_KEY,
            "S3_SECRET_KEY": SECRET_KEY,
            "S3_REGION": REGION,
            "S3_BUCKET": "restored",
        }
        try:
            loaded = await llmnet("restore", str(tmp_path / "local"), env=bucket)
            assert loaded.returncode == 0, loaded.stderr
            saved = await llmnet("backup", str(tmp_path / "s3"), env=bucket)
            assert saved.returncode == 0, saved.stderr
            # Into a bucket that holds objects (and a database with tables): refused.
            refused = await llmnet(
                "restore", str(tmp_path / "local"), env={**bucket, "DATABASE_URL": database_url}
            )
            # ... unless forced: the backup's tables replace theirs, its objects overwrite.
            forced = await llmnet("restore", str(tmp_path / "local"), "--force", env=bucket)
            assert forced.returncode == 0, forced.stderr
        finally:
            await drop_database(ADMIN_DATABASE_URL, restored_url)
    second = json.loads((tmp_path / "s3" / "manifest.json").read_text())
    assert second["storage_backend"] == "s3"
    assert second["objects"] == first["objects"]  # every key, size and SHA-256
    assert second["alembic_heads"] == first["alembic_heads"]
    assert refused.returncode == 1
    assert "already has" in refused.stderr  # the database's tables
    assert "bucket 'restored'" in refused.stderr  # and the bucket's objects
    # A backup that changed since it was written is refused before anything is touched.
    (tmp_path / "local" / "objects" / first["objects"][0]["key"]).write_bytes(b"bit rot")
    damaged = await llmnet("restore", str(tmp_path / "local"), env=local)
    assert damaged.returncode == 1
    assert "does not match its checksum" in damaged.stderr
