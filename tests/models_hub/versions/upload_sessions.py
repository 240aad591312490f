"""Helpers for upload-session tests: a model's files as a session sends them."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import google_crc32c
import httpx
import numpy as np
from safetensors.numpy import save as save_safetensors

from tests.factories import UserSession

MIB = 1 << 20
PART = 5 * MIB  # the smallest part size (S3's rule), so a few MiB make several parts

CONFIG = json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}).encode()
TOKENIZER = json.dumps({"version": "1.0", "model": {"type": "BPE"}}).encode()


def weights(megabytes: float = 12.2, seed: int = 0) -> bytes:
    """A safetensors file of about `megabytes` MiB (three 5 MiB parts at the default)."""
    count = int(megabytes * MIB) // 4
    data = np.random.default_rng(seed).standard_normal(count).astype(np.float32)
    return save_safetensors({"w": data})


def hf_model(**overrides: bytes) -> dict[str, bytes]:
    files = {"config.json": CONFIG, "model.safetensors": weights(), "tokenizer.json": TOKENIZER}
    files.update(overrides)
    return files


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def crc32c(content: bytes) -> str:
    return f"{google_crc32c.value(content):08x}"


def base(model_id: str) -> str:
    return f"/api/v1/models/{model_id}/upload-sessions"


async def create_session(
    client: httpx.AsyncClient,
    user: UserSession,
    model_id: str,
    files: dict[str, bytes],
    *,
    part_size: int | None = PART,
    checksums: bool = True,
) -> httpx.Response:
    body: dict[str, Any] = {
        "files": [
            {
                "name": name,
                "size": len(content),
                **({"sha256": sha256(content)} if checksums else {}),
            }
            for name, content in files.items()
        ]
    }
    if part_size is not None:
        body["part_size"] = part_size
    return await client.post(base(model_id), json=body, headers=user.headers)


async def put_part(
    client: httpx.AsyncClient,
    user: UserSession,
    model_id: str,
    session_id: str,
    name: str,
    offset: int,
    body: bytes,
) -> httpx.Response:
    return await client.put(
        f"{base(model_id)}/{session_id}/files/{name}",
        params={"offset": offset},
        content=body,
        headers={**user.headers, "Content-Type": "application/octet-stream"},
    )


def parts_of(content: bytes, part_size: int = PART) -> list[tuple[int, bytes]]:
    return [(o, content[o : o + part_size]) for o in range(0, len(content), part_size)]


async def send_all(
    client: httpx.AsyncClient,
    user: UserSession,
    model_id: str,
    session_id: str,
    files: dict[str, bytes],
    part_size: int = PART,
) -> None:
    for name, content in files.items():
        for offset, chunk in parts_of(content, part_size):
            response = await put_part(client, user, model_id, session_id, name, offset, chunk)
            assert response.status_code == 200, response.text


async def complete(
    client: httpx.AsyncClient, user: UserSession, model_id: str, session_id: str
) -> httpx.Response:
    return await client.post(f"{base(model_id)}/{session_id}/complete", headers=user.headers)
