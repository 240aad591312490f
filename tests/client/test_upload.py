"""Uploads through upload sessions: the client's parts, a connection cut mid-file and the
resume that sends only what the server is missing, and `llmnet models upload` under a
terminal (its progress bar; Ctrl-C, then the same command resumes)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import signal
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pexpect
import pytest
import torch
from llmnet_client import Client
from llmnet_client.errors import APIConnectionError, PartCorrupted
from transformers import LlamaForCausalLM

from services.models_hub.versions.sessions.service import upload_session_service
from tests.client.conftest import LLMNET, client_for, live_ctrl_c
from tests.client.test_cli import login
from tests.models_hub.tiny_models import (
    _save_generation_config,
    _token_ids,
    build_tokenizer,
    tiny_llama_config,
)

MIB = 1024 * 1024
PART = 5 * MIB  # the smallest part size a session takes


@pytest.fixture(scope="session")
def wide_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama wide enough that its weights span several 5 MiB parts (~13 MiB)."""
    dest = tmp_path_factory.mktemp("wide") / "model"
    tokenizer = build_tokenizer(dest)
    ids = _token_ids(tokenizer)
    config = tiny_llama_config(len(tokenizer), ids)
    config.hidden_size, config.intermediate_size = 384, 1024
    config.head_dim = 384 // config.num_attention_heads
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(dest)
    _save_generation_config(dest, ids)
    assert (dest / "model.safetensors").stat().st_size > 2 * PART
    return dest


class CuttingTransport(httpx.AsyncBaseTransport):
    """The real transport, counting the bytes of every part sent; the first PUT of the part at
    `cut_offset` of `cut_file` sends half its body, then the connection is cut."""

    def __init__(self, cut_file: str | None = None, cut_offset: int = PART) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.cut_file, self.cut_offset = cut_file, cut_offset
        self.sent: Counter[tuple[str, int]] = Counter()
        self.bytes_sent = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "PUT":
            return await self._inner.handle_async_request(request)
        name = request.url.path.rsplit("/", 1)[1]
        offset = int(request.url.params["offset"])
        body = request.read()
        self.sent[(name, offset)] += 1
        if (name, offset) == (self.cut_file, self.cut_offset):
            self.cut_file = None  # once

            async def half() -> AsyncIterator[bytes]:
                yield body[: len(body) // 2]
                raise httpx.WriteError("connection cut by the test")

            cut = httpx.Request(
                request.method, request.url, headers=request.headers, content=half()
            )
            return await self._inner.handle_async_request(cut)
        self.bytes_sent += len(body)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class CorruptingTransport(CuttingTransport):
    """The real transport; the first `times` PUTs of the part at `offset` of `name` arrive
    with one byte flipped, as if altered on the way."""

    def __init__(self, name: str, offset: int, times: int) -> None:
        super().__init__()
        self.target, self.times = (name, offset), times

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT" and self.times:
            name = request.url.path.rsplit("/", 1)[1]
            if (name, int(request.url.params["offset"])) == self.target:
                self.times -= 1
                body = bytearray(request.read())
                body[len(body) // 2] ^= 0xFF
                request = httpx.Request(
                    request.method, request.url, headers=request.headers, content=bytes(body)
                )
        return await super().handle_async_request(request)


async def test_a_part_altered_on_the_way_is_sent_again(platform, owner, wide_llama_dir) -> None:
    weights = wide_llama_dir / "model.safetensors"
    once = CorruptingTransport("model.safetensors", PART, times=1)
    async with client_for(platform, owner, transport=once) as api:
        model = await api.models.create("Altered", slug="altered", visibility="private")
        version = await api.upload(model["id"], wide_llama_dir, part_size=PART, parallel=2)
        # The server's CRC32C of the altered copy differed: the client sent that part again.
        assert once.sent[("model.safetensors", PART)] == 2
        files = {f["name"]: f["sha256"] for f in version["files"]}
        assert files["model.safetensors"] == hashlib.sha256(weights.read_bytes()).hexdigest()

    always = CorruptingTransport("model.safetensors", PART, times=100)
    async with client_for(platform, owner, transport=always) as api:
        model = await api.models.create("Noisy", slug="noisy", visibility="private")
        with pytest.raises(PartCorrupted, match=f"offset {PART} arrived altered 3 times"):
            await api.upload(model["id"], wide_llama_dir, part_size=PART, max_attempts=1)
        assert always.sent[("model.safetensors", PART)] == 3


async def test_a_connection_cut_mid_file_resumes_with_only_the_missing_parts(
    platform, owner, wide_llama_dir, run_jobs
) -> None:
    weights = (wide_llama_dir / "model.safetensors").stat().st_size
    total = sum(p.stat().st_size for p in wide_llama_dir.iterdir() if p.is_file())
    cutting = CuttingTransport("model.safetensors", PART)
    async with client_for(platform, owner, transport=cutting) as api:
        model = await api.models.create("Wide", slug="wide", visibility="private")
        sessions: list[str] = []
        with pytest.raises(APIConnectionError):
            await api.upload(
                model["id"],
                wide_llama_dir,
                part_size=PART,
                parallel=1,
                on_session=sessions.append,
                max_attempts=1,
            )
        interrupted = await api.upload_sessions.get(model["id"], sessions[0])
    assert interrupted["status"] == "open"
    weights_file = next(f for f in interrupted["files"] if f["name"] == "model.safetensors")
    assert PART in weights_file["missing_offsets"]  # the cut part was not kept
    received_before = interrupted["received_bytes"]
    assert 0 < received_before < total

    # The same upload again (as after a restart): only what the server misses is sent.
    resuming = CuttingTransport()
    progress: list[tuple[int, int]] = []
    async with client_for(platform, owner, transport=resuming) as api:
        version = await api.upload(
            model["id"],
            wide_llama_dir,
            session_id=sessions[0],
            part_size=PART,
            progress=lambda done, all_: progress.append((done, all_)),
        )
        assert version["status"] in ("validating", "uploading")
        assert resuming.bytes_sent == total - received_before
        assert all(count == 1 for count in resuming.sent.values())
        assert progress[0] == (received_before, total)
        assert progress[-1] == (total, total)
        completed = await api.upload_sessions.get(model["id"], sessions[0])
        assert completed["status"] == "completed"
        assert completed["received_bytes"] == total

        # Asked again (its state was not cleared): the version it made, nothing re-sent.
        again = await api.upload(model["id"], wide_llama_dir, session_id=sessions[0])
        assert again["id"] == version["id"]
        assert resuming.bytes_sent == total - received_before

        await run_jobs()
        ready = await api.versions.get(model["id"], version["id"])
        assert ready["status"] == "ready", ready["error"]
        assert {f["name"]: f["size"] for f in ready["files"]}["model.safetensors"] == weights


async def test_a_cut_inside_one_call_is_resumed_by_the_client_itself(
    platform, owner, tiny_llama_dir, wide_llama_dir
) -> None:
    cutting = CuttingTransport("model.safetensors", PART)
    async with client_for(platform, owner, transport=cutting) as api:
        model = await api.models.create("Wide Again", slug="wide-again", visibility="private")
        version = await api.upload(model["id"], wide_llama_dir, part_size=PART, parallel=4)
        assert version["number"] == 1
    # The cut part went twice (cut, then again); every other part once.
    assert cutting.sent[("model.safetensors", PART)] == 2
    assert all(n == 1 for key, n in cutting.sent.items() if key != ("model.safetensors", PART))


class SyncCuttingTransport(httpx.BaseTransport):
    """`CuttingTransport` for the sync client (its parts go from threads)."""

    def __init__(self, cut_file: str, cut_offset: int = PART) -> None:
        self._inner = httpx.HTTPTransport()
        self.cut_file: str | None = cut_file
        self.cut_offset = cut_offset
        self.sent: Counter[tuple[str, int]] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "PUT":
            return self._inner.handle_request(request)
        name = request.url.path.rsplit("/", 1)[1]
        offset = int(request.url.params["offset"])
        body = request.read()
        self.sent[(name, offset)] += 1
        if (name, offset) == (self.cut_file, self.cut_offset):
            self.cut_file = None

            def half() -> Iterator[bytes]:
                yield body[: len(body) // 2]
                raise httpx.WriteError("connection cut by the test")

            cut = httpx.Request(
                request.method, request.url, headers=request.headers, content=half()
            )
            return self._inner.handle_request(cut)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


async def test_the_sync_client_uploads_from_threads_and_resumes_a_cut(
    platform, owner, wide_llama_dir
) -> None:
    async with client_for(platform, owner) as api:
        model = await api.models.create("Threads", slug="threads", visibility="private")
    cutting = SyncCuttingTransport("model.safetensors")
    progress: list[tuple[int, int]] = []

    def work() -> Any:
        with Client(
            platform.gateway_url,
            access_token=owner.access_token,
            refresh_token=owner.refresh_token,
            transport=cutting,
        ) as api:
            return api.upload(
                model["id"],
                wide_llama_dir,
                part_size=PART,
                parallel=4,
                progress=lambda done, total: progress.append((done, total)),
            )

    version = await asyncio.to_thread(work)
    assert version["number"] == 1
    assert cutting.sent[("model.safetensors", PART)] == 2
    assert all(n == 1 for key, n in cutting.sent.items() if key != ("model.safetensors", PART))
    assert progress[-1][0] == progress[-1][1]


def _upload_with_progress(env: dict[str, str], folder: Path, ref: str) -> tuple[str, int]:
    child = pexpect.spawn(
        LLMNET,
        ["models", "upload", str(folder), "--model", ref, "--part-size", str(PART)],
        env=env,
        encoding="utf-8",
        timeout=120,
        dimensions=(40, 160),
    )
    try:
        child.expect(pexpect.EOF)
    finally:
        child.close()
    return str(child.before), child.exitstatus if child.exitstatus is not None else -1


async def test_the_upload_command_shows_a_progress_bar_and_resumes_after_ctrl_c(
    platform, cli_env, owner, wide_llama_dir, monkeypatch
) -> None:
    await login(cli_env, owner)
    async with client_for(platform, owner) as api:
        model = await api.models.create("Shown", slug="shown", visibility="private")
    ref = model["ref"]

    # Slow each part down on the server, so Ctrl-C lands mid-upload.
    put_part = upload_session_service.put_part
    finished: list[tuple[str, int]] = []

    async def slow_put_part(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.4)
        answer = await put_part(*args, **kwargs)
        finished.append((answer.name, answer.offset))
        return answer

    monkeypatch.setattr(upload_session_service, "put_part", slow_put_part)
    state = Path(cli_env["LLMNET_CONFIG_DIR"]) / "uploads.json"

    def interrupt() -> str:
        child = pexpect.spawn(
            LLMNET,
            ["models", "upload", str(wide_llama_dir), "--model", ref, "--part-size", str(PART)],
            env=cli_env,
            encoding="utf-8",
            timeout=60,
            dimensions=(40, 160),
            preexec_fn=live_ctrl_c,
        )
        try:
            child.expect(r"\d+(\.\d+)?/\d+(\.\d+)? MB")  # the bar, with bytes done/total
            child.kill(signal.SIGINT)
            child.expect(pexpect.EOF)
        finally:
            child.close()
        assert child.exitstatus == 130, child.before
        return str(child.before)

    await asyncio.to_thread(interrupt)
    remembered = json.loads(state.read_text())
    [entry] = remembered.values()
    sent_before = list(finished)

    output, status = await asyncio.to_thread(_upload_with_progress, cli_env, wide_llama_dir, ref)
    assert status == 0, output
    assert f"Resuming the upload of {wide_llama_dir}" in output
    assert entry["session_id"] in output
    assert re.search(r"MB/s", output)  # speed column
    assert "Uploaded version 1" in output
    # Parts done before Ctrl-C were not sent again.
    resent = finished[len(sent_before) :]
    assert not set(sent_before) & set(resent)
    assert json.loads(state.read_text()) == {}
