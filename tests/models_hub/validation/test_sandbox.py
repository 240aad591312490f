"""The validation sandbox, end to end: real child processes validating real tiny models.

Successful validations start torch in the child (seconds each); failures caught by the file
checks answer before torch is imported, so most of this file is fast.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import torch

from services.models_hub.validation.runner import (
    CODE_ROOT,
    SandboxLimits,
    ValidationFailed,
    ValidationReport,
    network_namespace_flags,
    run_sandbox,
    run_sandboxed,
    sandbox_environment,
)
from shared.model_files import ModelFileError, check_model_dir, check_model_files
from shared.model_loading import load_causal_lm
from tests.models_hub.tiny_models import (
    build_tiny_gguf,
    build_tiny_gpt2,
    build_tiny_llama,
    config_with_auto_map,
    write_pickle_checkpoint,
    write_truncated_safetensors,
)

LIMITS = SandboxLimits(timeout_seconds=120, threads=2)


def parameter_count(model_dir: Path) -> int:
    model, _ = load_causal_lm(model_dir)
    return sum(p.numel() for p in model.parameters())


async def validate_fails(model_dir: Path, tmp_path: Path, gguf_file: str | None = None) -> str:
    with pytest.raises(ValidationFailed) as info:
        await run_sandbox(model_dir, tmp_path / "out", limits=LIMITS, gguf_file=gguf_file)
    return info.value.reason


# ---- models that pass -------------------------------------------------------------------------


async def test_tiny_llama_validates_with_its_metadata(tmp_path: Path) -> None:
    model_dir = build_tiny_llama(tmp_path / "llama")

    report = await run_sandbox(model_dir, tmp_path / "out", limits=LIMITS)

    assert isinstance(report, ValidationReport)
    assert report.architecture == "LlamaForCausalLM"
    assert report.parameter_count == parameter_count(model_dir)
    assert report.dtype == "float32"
    assert report.context_length == 256
    assert report.vocab_size == json.loads((model_dir / "config.json").read_text())["vocab_size"]
    assert report.has_chat_template is True
    assert report.converted is False
    assert report.load_seconds > 0
    assert report.tokens_per_second > 0
    assert isinstance(report.sample, str)


async def test_tiny_gpt2_without_chat_template_validates(tmp_path: Path) -> None:
    model_dir = build_tiny_gpt2(tmp_path / "gpt2")
    (model_dir / "chat_template.jinja").unlink()

    report = await run_sandbox(model_dir, tmp_path / "out", limits=LIMITS, max_new_tokens=4)

    assert report.architecture == "GPT2LMHeadModel"
    assert report.parameter_count == parameter_count(model_dir)
    assert report.context_length == 256
    assert report.has_chat_template is False
    assert report.tokens_per_second > 0


async def test_gguf_is_converted_to_a_safetensors_folder_that_loads(tmp_path: Path) -> None:
    gguf_file = build_tiny_gguf(tmp_path / "upload" / "tiny.gguf")
    out = tmp_path / "converted"

    report = await run_sandbox(gguf_file.parent, out, limits=LIMITS, gguf_file=gguf_file.name)

    assert report.converted is True
    assert report.architecture == "LlamaForCausalLM"
    assert report.has_chat_template is True
    assert (out / "model.safetensors").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in config
    # The converted folder is what inference serves: it loads the ordinary way.
    model, tokenizer = load_causal_lm(out)
    assert sum(p.numel() for p in model.parameters()) == report.parameter_count
    assert tokenizer.chat_template
    assert tokenizer.decode(tokenizer("Grüße 🙂").input_ids) == "Grüße 🙂"
    # Same seed, same weights: the GGUF's permuted q/k came back in the right order.
    original, original_tokenizer = load_causal_lm(build_tiny_llama(tmp_path / "original"))
    ids = original_tokenizer("The quick brown fox", return_tensors="pt").input_ids
    assert tokenizer("The quick brown fox", return_tensors="pt").input_ids.tolist() == ids.tolist()
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, original(ids).logits, atol=1e-5)


# ---- broken uploads ---------------------------------------------------------------------------


async def test_broken_config_json(tmp_path: Path) -> None:
    model_dir = build_tiny_llama(tmp_path / "m")
    (model_dir / "config.json").write_text('{"model_type": "llama",')

    reason = await validate_fails(model_dir, tmp_path)

    assert reason.startswith("config.json is not valid JSON:")


async def test_truncated_safetensors(tmp_path: Path) -> None:
    model_dir = build_tiny_llama(tmp_path / "m")
    write_truncated_safetensors(model_dir / "model.safetensors")

    reason = await validate_fails(model_dir, tmp_path)

    assert reason.startswith("safetensors file model.safetensors is truncated")


async def test_missing_tokenizer(tmp_path: Path) -> None:
    model_dir = build_tiny_llama(tmp_path / "m")
    (model_dir / "tokenizer.json").unlink()

    reason = await validate_fails(model_dir, tmp_path)

    assert reason.startswith("tokenizer files are missing: add tokenizer.json")


async def test_config_asking_for_custom_code(tmp_path: Path) -> None:
    model_dir = build_tiny_llama(tmp_path / "m")
    config_with_auto_map(model_dir)

    reason = await validate_fails(model_dir, tmp_path)

    assert "custom code" in reason
    assert "trust_remote_code" in reason


async def test_a_file_that_is_not_gguf(tmp_path: Path) -> None:
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "model.gguf").write_bytes(b"PK\x03\x04 not a gguf")

    reason = await validate_fails(tmp_path / "up", tmp_path, gguf_file="model.gguf")

    assert "is not a GGUF file" in reason


def test_file_checks_name_the_problem(tmp_path: Path) -> None:
    """The in-process checks inference shares (no child needed)."""
    model_dir = build_tiny_llama(tmp_path / "m")
    assert check_model_dir(model_dir)["model_type"] == "llama"

    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, "model_type": "foo"}))
    with pytest.raises(ModelFileError, match="model type 'foo' is not supported by transformers"):
        check_model_dir(model_dir)

    (model_dir / "config.json").write_text(json.dumps({**config, "model_type": "vit"}))
    with pytest.raises(ModelFileError, match="no text-generation"):
        check_model_dir(model_dir)

    (model_dir / "config.json").write_text(json.dumps(config))
    (model_dir / "model.safetensors").unlink()
    write_pickle_checkpoint(model_dir / "pytorch_model.bin")
    with pytest.raises(ModelFileError, match="only pickle weights"):
        check_model_files(model_dir)

    config_with_auto_map(model_dir)
    with pytest.raises(ModelFileError, match="custom code"):
        load_causal_lm(model_dir)


# ---- limits -----------------------------------------------------------------------------------


async def test_timeout(tmp_path: Path) -> None:
    model_dir = build_tiny_llama(tmp_path / "m")
    limits = SandboxLimits(timeout_seconds=0.5)

    started = time.monotonic()
    with pytest.raises(ValidationFailed) as info:
        await run_sandbox(model_dir, tmp_path / "out", limits=limits)

    assert info.value.reason == "validation took longer than 0.5 s"
    assert time.monotonic() - started < 10


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    script = textwrap.dedent(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(60)
        """
    )
    result = await run_sandboxed(["-c", script], limits=SandboxLimits(timeout_seconds=1))

    assert result.timed_out
    grandchild = int(pid_file.read_text())
    for _ in range(50):  # reaped by init shortly after the kill
        if not _alive(grandchild):
            break
        await asyncio.sleep(0.05)
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(")")[-1].split()[0] == "Z")


async def test_memory_limit_too_small(tmp_path: Path) -> None:
    model_dir = build_tiny_llama(tmp_path / "m")
    limits = SandboxLimits(memory_bytes=200 * 1024**2)

    with pytest.raises(ValidationFailed) as info:
        await run_sandbox(model_dir, tmp_path / "out", limits=limits)

    assert "ran out of memory" in info.value.reason


async def test_cpu_limit_stops_a_busy_child() -> None:
    result = await run_sandboxed(
        ["-c", "while True: pass"], limits=SandboxLimits(cpu_seconds=1, timeout_seconds=30)
    )

    assert not result.timed_out
    assert result.returncode == -signal.SIGXCPU


# ---- no network, no secrets -------------------------------------------------------------------


@pytest.fixture
async def tcp_listener() -> AsyncIterator[tuple[int, list[str]]]:
    """A TCP server on loopback in the test's own network namespace; records every connection."""
    seen: list[str] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(str(writer.get_extra_info("peername")))
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield port, seen


PROBE = """
import errno, json, socket, _socket

def attempt(label, action):
    try:
        action()
        results[label] = "connected"
    except PermissionError as exc:
        results[label] = "refused: " + str(exc)
    except OSError as exc:
        results[label] = "oserror: " + errno.errorcode.get(exc.errno, str(exc.errno))

results = {{}}
target = ("127.0.0.1", {port})
{before}
import services.models_hub.validation.sandbox  # installs the guard
attempt("guarded connect", lambda: socket.create_connection(target, timeout=3))
attempt("guarded raw _socket", lambda: _socket.socket().connect(target))
attempt("guarded udp", lambda: socket.socket(type=socket.SOCK_DGRAM).sendto(b"x", target))
attempt("guarded dns", lambda: socket.getaddrinfo("example.com", 443))
a, b = socket.socketpair()  # Unix sockets keep working (multiprocessing, tokenizers)
a.sendall(b"ok")
results["unix"] = b.recv(2).decode()
print(json.dumps(results))
"""


def _assert_guarded(results: dict[str, str]) -> None:
    for label in ("guarded connect", "guarded raw _socket", "guarded udp", "guarded dns"):
        assert results[label].startswith("refused: network access is disabled"), results
    assert results["unix"] == "ok"


async def test_child_cannot_open_a_tcp_connection(tcp_listener: tuple[int, list[str]]) -> None:
    port, seen = tcp_listener
    if await network_namespace_flags() is None:
        pytest.skip("no network namespace on this machine; the guard is tested on its own below")
    before = 'attempt("unguarded connect", lambda: socket.create_connection(target, timeout=3))'
    script = PROBE.format(port=port, before=before)

    result = await run_sandboxed(["-c", script], limits=SandboxLimits(timeout_seconds=30))

    assert result.returncode == 0, result.stderr.decode()
    assert result.network_namespace
    results = json.loads(result.stdout)
    # In its own network namespace even loopback is down: nothing to connect to at all...
    assert results["unguarded connect"] == "oserror: ENETUNREACH"
    # ...and the guard refuses before the kernel is asked.
    _assert_guarded(results)
    assert seen == []


async def test_guard_alone_refuses_the_network(tcp_listener: tuple[int, list[str]]) -> None:
    """Without a namespace (a plain child sharing our network) the guard still holds."""
    port, seen = tcp_listener
    before = 'attempt("unguarded connect", lambda: socket.create_connection(target, timeout=3))'
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PROBE.format(port=port, before=before),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(CODE_ROOT)},
    )
    stdout, _ = await proc.communicate()

    results = json.loads(stdout)
    assert results["unguarded connect"] == "connected"  # the listener is reachable here...
    _assert_guarded(results)  # ...but not once the guard is in
    for _ in range(20):
        if seen:
            break
        await asyncio.sleep(0.05)
    assert len(seen) == 1  # only the unguarded connection arrived


async def test_child_environment_has_no_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets = {
        "DATABASE_URL": "postgresql://app:hunter2@db/llmnet",
        "REDIS_URL": "redis://:hunter2@redis:6379/0",
        "INTERNAL_TOKEN": "internal-secret",
        "S3_SECRET_KEY": "s3-secret",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
        "HF_TOKEN": "hf_secret",
        "JWT_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    script = "import json, os; print(json.dumps({'env': dict(os.environ), 'cwd': os.getcwd()}))"

    result = await run_sandboxed(["-c", script], limits=SandboxLimits(threads=3))

    child = json.loads(result.stdout)
    env: dict[str, str] = child["env"]
    assert not set(secrets) & set(env)
    assert not any(value in env.values() for value in secrets.values())
    # Only what the runner sets itself (Python may add LC_CTYPE when it coerces the locale).
    assert set(env) - {"LC_CTYPE"} <= set(sandbox_environment(tmp_path, SandboxLimits()))
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["OMP_NUM_THREADS"] == "3"
    assert env["HF_HOME"].startswith(env["HOME"])
    assert child["cwd"] != os.getcwd()
    assert not _alive_path(child["cwd"])  # the throwaway folder is gone afterwards


def _alive_path(path: str) -> bool:
    return Path(path).exists()
