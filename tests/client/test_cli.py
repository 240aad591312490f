"""The `llmnet` user commands, run as a user runs them: a subprocess, or under a
pseudo-terminal (pexpect) where progress bars and streamed tokens show."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import stat
from pathlib import Path
from typing import Any

import pexpect

from tests.client.conftest import (
    LLMNET,
    client_for,
    live_ctrl_c,
    llmnet,
    run_feed_jobs,
    servable_files,
)
from tests.factories import PASSWORD, UserSession


async def login(env: dict[str, str], user: UserSession) -> None:
    result = await llmnet(env, "login", "-u", user.username, "--password-stdin", stdin=PASSWORD)
    assert result.returncode == 0, result.stderr
    assert user.username in result.stderr


async def test_login_stores_a_private_credential(cli_env, owner) -> None:
    await login(cli_env, owner)

    config = Path(cli_env["LLMNET_CONFIG_DIR"])
    credentials = config / "credentials.json"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.stat().st_mode) == 0o700
    stored = json.loads(credentials.read_text())
    assert stored["url"] == cli_env["LLMNET_URL"]
    assert stored["access_token"]
    assert stored["refresh_token"]

    whoami = await llmnet(cli_env, "whoami", "--json")
    assert whoami.returncode == 0, whoami.stderr
    assert json.loads(whoami.stdout)["username"] == owner.username

    logout = await llmnet(cli_env, "logout")
    assert logout.returncode == 0
    assert not credentials.exists()
    refused = await llmnet(cli_env, "whoami")
    assert refused.returncode == 3
    assert "Not logged in" in refused.stderr


async def test_bad_password_and_usage_errors_have_their_exit_codes(cli_env, owner) -> None:
    bad = await llmnet(cli_env, "login", "-u", owner.username, "--password-stdin", stdin="nope")
    assert bad.returncode == 3
    assert "invalid_credentials" in bad.stderr
    usage = await llmnet(cli_env, "models", "show")
    assert usage.returncode == 2


async def test_keys_and_a_revoked_key_gets_a_clear_message(cli_env, owner) -> None:
    await login(cli_env, owner)
    created = await llmnet(cli_env, "keys", "create", "laptop", "--scope", "read", "--json")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    listed = await llmnet(cli_env, "keys", "list", "--json")
    assert [k["id"] for k in json.loads(listed.stdout)] == [key["id"]]

    # LLMNET_API_KEY serves without any stored login.
    empty = str(Path(cli_env["LLMNET_CONFIG_DIR"]).parent / "empty")
    keyed = {**cli_env, "LLMNET_API_KEY": key["key"], "LLMNET_CONFIG_DIR": empty}
    whoami = await llmnet(keyed, "whoami", "--json")
    assert whoami.returncode == 0, whoami.stderr
    assert json.loads(whoami.stdout)["username"] == owner.username

    revoked = await llmnet(cli_env, "keys", "revoke", key["id"])
    assert revoked.returncode == 0, revoked.stderr
    refused = await llmnet(keyed, "whoami")
    assert refused.returncode == 3
    assert "authentication failed" in refused.stderr
    assert "llmnet login" in refused.stderr
    assert refused.stdout == ""


async def test_models_and_versions_commands_print_json(cli_env, platform, owner, llama) -> None:
    await login(cli_env, owner)
    created = await llmnet(cli_env, "models", "create", "CLI Model", "--tag", "cli", "--json")
    assert created.returncode == 0, created.stderr
    model = json.loads(created.stdout)
    assert model["ref"] == f"{owner.username}/cli-model"
    again = await llmnet(cli_env, "models", "create", "CLI Model")
    assert again.returncode == 5
    assert "refused" in again.stderr

    listed = await llmnet(cli_env, "models", "list", "--mine", "--json")
    assert sorted(m["ref"] for m in json.loads(listed.stdout)) == sorted(
        [model["ref"], llama["ref"]]
    )
    table = await llmnet(cli_env, "models", "list", "--mine")
    assert model["ref"] in table.stdout
    shown = await llmnet(cli_env, "models", "show", llama["ref"], "--json")
    assert json.loads(shown.stdout)["id"] == llama["id"]
    missing = await llmnet(cli_env, "models", "show", "nobody/nothing")
    assert missing.returncode == 4
    assert "model_not_found" in missing.stderr

    await servable_files(platform, llama)
    versions = await llmnet(cli_env, "versions", "list", llama["ref"], "--json")
    assert [v["number"] for v in json.loads(versions.stdout)] == [1]


def _spawn_chat(env: dict[str, str], ref: str, max_tokens: int) -> pexpect.spawn:
    return pexpect.spawn(
        LLMNET,
        ["chat", ref, "--temperature", "0", "--max-tokens", str(max_tokens)],
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 120),
    )


def _chat(env: dict[str, str], ref: str) -> tuple[list[str], int]:
    child = _spawn_chat(env, ref, 8)
    answers: list[str] = []
    try:
        child.expect("you> ")
        child.sendline("Hello there")
        child.expect(re.escape(f"{ref}> "))
        child.expect("you> ")
        answers.append(child.before)
        child.sendline("/regenerate")
        child.expect(re.escape(f"{ref}> "))
        child.expect("you> ")
        answers.append(child.before)
        child.sendline("/model")
        child.expect("chatting with")
        child.expect("you> ")
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    return answers, child.exitstatus or 0


def _chat_stop(env: dict[str, str], ref: str) -> str:
    child = _spawn_chat(env, ref, 220)
    try:
        child.expect("you> ")
        child.sendline("Tell me a long story")
        child.expect(re.escape(f"{ref}> "))
        child.sendline("/stop")  # typed while the answer streams
        child.expect("you> ")
        stopped = str(child.before)
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    return stopped


async def test_chat_streams_tokens_under_a_terminal(cli_env, owner, llama) -> None:
    await login(cli_env, owner)
    answers, status = await asyncio.to_thread(_chat, cli_env, llama["ref"])
    assert status == 0
    assert len(answers) == 2
    assert all(answer.strip() for answer in answers)  # tokens came before the next prompt

    stopped = await asyncio.to_thread(_chat_stop, cli_env, llama["ref"])
    assert "[cancelled]" in stopped


async def test_post_waits_for_the_model_and_feed_prints_json(
    cli_env, client, worker_ctx, owner, llama
) -> None:
    await login(cli_env, owner)
    command = asyncio.create_task(
        llmnet(cli_env, "post", llama["ref"], "Foxes?", "--max-tokens", "6", "--json")
    )
    # The feed worker's part: generate the post while the command waits for it.
    while not command.done():
        await run_feed_jobs(worker_ctx)
        await asyncio.sleep(0.2)
    result = command.result()
    assert result.returncode == 0, result.stderr
    post = json.loads(result.stdout)
    assert post["status"] == "published"

    feed = await llmnet(cli_env, "feed", "--public", "--json")
    assert [p["id"] for p in json.loads(feed.stdout)] == [post["id"]]
    printed = await llmnet(cli_env, "feed", "--public")
    assert llama["ref"] in printed.stdout


async def test_eval_commands(cli_env, platform, inference_ctx, owner, llama) -> None:
    from tests.client.conftest import run_evaluations

    await login(cli_env, owner)
    started = await llmnet(
        cli_env,
        "eval",
        "run",
        llama["ref"],
        "--prompt-set",
        "consistency",
        "--repeats",
        "2",
        "--max-tokens",
        "8",
        "--no-watch",
        "--json",
    )
    assert started.returncode == 0, started.stderr
    evaluation: dict[str, Any] = json.loads(started.stdout)
    assert await run_evaluations(inference_ctx) == ["completed"]
    shown = await llmnet(cli_env, "eval", "show", evaluation["id"], "--json")
    assert json.loads(shown.stdout)["status"] == "completed"
    table = await llmnet(cli_env, "eval", "show", evaluation["id"])
    assert "consistency" in table.stdout
    async with client_for(platform, owner) as api:
        assert (await api.evaluations.get(evaluation["id"]))["status"] == "completed"


async def test_feed_follow_prints_live_posts(cli_env, api, worker_ctx, owner, llama) -> None:
    await login(cli_env, owner)
    await api.models.follow(llama["id"])
    process = await asyncio.create_subprocess_exec(
        LLMNET,
        "feed",
        "--follow",
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env,
        preexec_fn=live_ctrl_c,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            ready = json.loads(await process.stdout.readline())
            assert ready["event"] == "ready"
            post = await api.posts.create(llama["ref"], "Foxes?", max_tokens=6, temperature=0)
            assert await run_feed_jobs(worker_ctx) == ["published"]
            event = json.loads(await process.stdout.readline())
            while event["event"] != "post":
                event = json.loads(await process.stdout.readline())
        assert event["data"]["id"] == post["id"]
    finally:
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            await process.wait()
    assert process.returncode == 130


async def test_fine_tune_commands(cli_env, platform, client, tmp_path) -> None:
    from arq.worker import Worker

    from services.models_hub.finetune_worker import settings_for
    from tests.inference.conftest import ready_model
    from tests.models_hub.conftest import developer
    from tests.models_hub.fine_tunes.conftest import MEMORISE, fine_tune_settings
    from tests.models_hub.tiny_models import build_tiny_llama

    tuner = await developer(client, "clituner")
    base = await ready_model(
        platform, tuner, build_tiny_llama(tmp_path / "base"), slug="base", visibility="private"
    )
    training = tmp_path / "train.jsonl"
    training.write_bytes(MEMORISE)
    await login(cli_env, tuner)
    missing = await llmnet(cli_env, "fine-tune", "create", base["ref"], str(tmp_path / "none"))
    assert missing.returncode == 2
    created = await llmnet(
        cli_env,
        "fine-tune",
        "create",
        base["ref"],
        str(training),
        "--method",
        "full",
        "--epochs",
        "1",
        "--max-seq-length",
        "64",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    job = json.loads(created.stdout)
    assert job["status"] == "queued"

    options = settings_for(fine_tune_settings(platform))
    options.pop("cron_jobs")
    worker = Worker(**options, burst=True, poll_delay=0.05, handle_signals=False)
    try:
        await worker.main()
    finally:
        await worker.close()

    watched = await llmnet(cli_env, "fine-tune", "watch", job["id"], "--json")
    assert watched.returncode == 0, watched.stderr
    events = [json.loads(line) for line in watched.stdout.splitlines()]
    assert "progress" in {e["event"] for e in events}
    assert events[-1]["data"]["status"] == "succeeded"
    shown = await llmnet(cli_env, "fine-tune", "watch", job["id"])
    assert "succeeded" in shown.stdout
