"""Model hub fixtures: developers, models, uploads, and a real arq worker run in burst mode."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.worker import Worker

from tests.conftest import platform_hub_settings
from tests.factories import UserSession, user_session


async def developer(client: httpx.AsyncClient, username: str | None = None) -> UserSession:
    user = await user_session(client, username)
    response = await client.patch(
        "/api/v1/users/me", json={"is_model_developer": True}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    return user


async def create_model(
    client: httpx.AsyncClient, user: UserSession, **fields: Any
) -> dict[str, Any]:
    body = {"name": "Tiny Poet", **fields}
    response = await client.post("/api/v1/models", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def folder_files(folder: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    """A model folder as multipart `files` parts."""
    return [
        ("files", (path.name, path.read_bytes(), "application/octet-stream"))
        for path in sorted(folder.iterdir())
        if path.is_file()
    ]


async def upload(
    client: httpx.AsyncClient,
    user: UserSession,
    model_id: str,
    files: list[tuple[str, tuple[str, bytes, str]]],
    data: dict[str, str] | None = None,
) -> httpx.Response:
    return await client.post(
        f"/api/v1/models/{model_id}/versions", files=files, data=data, headers=user.headers
    )


def checksums_field(files: list[tuple[str, tuple[str, bytes, str]]]) -> dict[str, str]:
    import hashlib

    return {
        "checksums": json.dumps(
            {name: hashlib.sha256(content).hexdigest() for _, (name, content, _) in files}
        )
    }


def as_file(name: str, content: bytes) -> tuple[str, tuple[str, bytes, str]]:
    return ("files", (name, content, "application/octet-stream"))


def archive_bytes(kind: str, entries: dict[str, bytes]) -> bytes:
    import tarfile
    import zipfile

    buffer = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, content in entries.items():
                archive.writestr(name, content)
    else:
        with tarfile.open(fileobj=buffer, mode="w:gz" if kind == "tar.gz" else "w") as archive:
            for name, content in entries.items():
                info = tarfile.TarInfo(name)
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@pytest.fixture
def hub_settings(platform):  # type: ignore[no-untyped-def]
    return platform_hub_settings(platform.common)


@pytest.fixture
def run_jobs(hub_settings) -> Callable[[], Awaitable[int]]:  # type: ignore[no-untyped-def]
    """Run the model hub's real arq worker until its queue is empty; returns jobs completed."""

    async def drain() -> int:
        from services.models_hub.worker import settings_for

        options = settings_for(hub_settings)
        options.pop("cron_jobs")  # the sweeper runs when a test calls it
        worker = Worker(**options, burst=True, poll_delay=0.05, handle_signals=False)
        try:
            await worker.main()
        finally:
            await worker.close()
        return int(worker.jobs_complete)

    return drain


@pytest.fixture
def hub_limits(platform):  # type: ignore[no-untyped-def]
    """Change the running model hub's settings for one test; restored afterwards."""
    app = platform.apps["models_hub"]
    original = app.state.hub

    def apply(**changes: Any) -> None:
        app.state.hub = dataclasses.replace(
            original, settings=original.settings.model_copy(update=changes)
        )

    yield apply
    app.state.hub = original
