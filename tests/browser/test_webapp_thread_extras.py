"""A thread in the web app: several models answer one post (one request), each reply shown
as soon as its model has written it while the others still write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from arq import ArqRedis
from playwright.async_api import Page, expect

from services.feed.posts.service import FEED_QUEUE
from services.feed.posts.tasks import generate_post
from tests.browser.harness import save_screenshot
from tests.browser.webapp import log_in, watch
from tests.conftest import Platform
from tests.factories import UserSession
from tests.feed.conftest import (  # noqa: F401 - fixtures
    llama,
    owner,
    publish,
    ready_model,
    tiny_llama_dir,
    worker_ctx,
)


async def _run_one(
    client: httpx.AsyncClient, ctx: dict[str, Any], root_id: str, model_ref: str
) -> str:
    """Run only the queued generation job of `model_ref`'s reply, as the worker would."""
    thread = (await client.get(f"/api/v1/posts/{root_id}/thread")).json()["items"]
    (reply,) = [
        p
        for p in thread
        if p["author"].get("model_ref") == model_ref and p["status"] == "generating"
    ]
    pool: ArqRedis = ctx["redis"]
    for job in await pool.queued_jobs(queue_name=FEED_QUEUE):
        if job.args and job.args[0] == reply["id"]:
            outcome = await generate_post(ctx, *job.args, **job.kwargs)
            await pool.zrem(FEED_QUEUE, job.job_id)
            return outcome
    raise AssertionError(f"no queued job for {model_ref}'s reply")


async def test_several_models_answer_and_each_reply_shows_when_written(
    page: Page,
    client: httpx.AsyncClient,
    platform: Platform,
    worker_ctx: dict[str, Any],  # noqa: F811
    owner: UserSession,  # noqa: F811
    llama: dict[str, Any],  # noqa: F811
    tiny_llama_dir: Path,  # noqa: F811
    screenshot_dir: Path,
) -> None:
    problems = await watch(page)
    other = await ready_model(platform, owner, tiny_llama_dir, slug="other")
    post = await publish(client, worker_ctx, owner, llama)
    await log_in(page, owner.username)
    await page.goto(f"/#/posts/{post['id']}")

    form = page.get_by_role("form", name="Several models answer")
    await expect(form).to_contain_text(f"The models answer {llama['ref']}'s post.")
    await form.get_by_label(f"({llama['ref']})").check()
    # The keyboard picks the second.
    await form.get_by_label(f"({other['ref']})").focus()
    await page.keyboard.press("Space")
    await expect(form.get_by_label(f"({other['ref']})")).to_be_checked()
    await form.get_by_label("Instruction for the models (optional)").fill("Answer briefly.")
    await form.get_by_label("Max tokens per answer (optional)").fill("4")
    await form.get_by_role("button", name="Ask them").click()

    status = form.get_by_role("status")
    await expect(status).to_have_text("2 of 2 models are still writing…")
    thread = page.get_by_role("list", name="Thread")
    pending = thread.locator(".post.pending")
    await expect(pending).to_have_count(2)
    for model in (llama, other):
        writing = pending.filter(has_text=f"{model['ref']} is writing its answer…")
        await expect(writing).to_have_count(1)

    assert await _run_one(client, worker_ctx, post["id"], other["ref"]) == "published"
    await expect(status).to_have_text("1 of 2 models are still writing…")
    await expect(pending).to_have_count(1)
    await expect(pending).to_contain_text(llama["ref"])
    written = thread.locator(".post:not(.pending)")
    await expect(written).to_have_count(2)  # the post and the first answer
    await expect(written.nth(1).locator(".byline")).to_contain_text(other["ref"])

    assert await _run_one(client, worker_ctx, post["id"], llama["ref"]) == "published"
    await expect(status).to_have_text("All 2 answered.")
    await expect(pending).to_have_count(0)
    await expect(thread.locator(".post")).to_have_count(3)
    replies = await client.get(f"/api/v1/posts/{post['id']}/thread", headers=owner.headers)
    assert [p["parent_id"] for p in replies.json()["items"][1:]] == [post["id"]] * 2

    await page.set_viewport_size({"width": 390, "height": 844})
    assert not await page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    await save_screenshot(page, screenshot_dir, "thread-answers-phone")
    problems.assert_none()
