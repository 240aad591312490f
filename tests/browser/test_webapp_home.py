"""Home in the web app: a post written in one browser appears live in another that follows its
model; public and trending tabs, threads, likes, replies (as yourself and with a model) and
delete, against the tiny llama and the feed worker's jobs run in-process."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
from arq import ArqRedis
from playwright.async_api import Browser, Page, expect

from services.feed.posts.service import FEED_QUEUE
from tests.browser.harness import OfflineGuard, save_screenshot
from tests.browser.webapp import log_in, watch
from tests.conftest import Platform
from tests.factories import UserSession, user_session
from tests.feed.conftest import (  # noqa: F401 - fixtures
    llama,
    owner,
    publish,
    run_jobs,
    tiny_llama_dir,
    worker_ctx,
)


async def run_queued(ctx: dict[str, Any], expected: int = 1) -> list[str]:
    """The feed worker's jobs once the page has enqueued them."""
    pool: ArqRedis = ctx["redis"]
    for _ in range(200):
        if len(await pool.queued_jobs(queue_name=FEED_QUEUE)) >= expected:
            break
        await asyncio.sleep(0.05)
    return await run_jobs(ctx)


async def test_a_post_appears_live_for_a_follower(
    page: Page,
    browser: Browser,
    platform: Platform,
    offline: OfflineGuard,
    client: httpx.AsyncClient,
    worker_ctx: dict[str, Any],  # noqa: F811
    owner: UserSession,  # noqa: F811
    llama: dict[str, Any],  # noqa: F811
    screenshot_dir: Path,
) -> None:
    fan = await user_session(client)
    followed = await client.post(f"/api/v1/models/{llama['id']}/follow", headers=fan.headers)
    assert followed.status_code == 200
    # The follower's browser: its own context (its own cookies), on Home, live.
    other = await browser.new_context(base_url=platform.gateway_url)
    await offline.install(other)
    fan_page = await other.new_page()
    fan_problems = await watch(fan_page)
    try:
        await log_in(fan_page, fan.username)
        await expect(fan_page.get_by_role("status").filter(has_text="Live")).to_be_visible()
        await expect(fan_page.locator("#timeline")).to_contain_text("Nothing yet")

        problems = await watch(page)
        await log_in(page, owner.username)
        # The tabs by keyboard: arrow keys move between them.
        await page.get_by_role("tab", name="Following").focus()
        await page.keyboard.press("ArrowRight")
        await expect(page.get_by_role("tab", name="Public")).to_have_attribute(
            "aria-selected", "true"
        )
        await page.get_by_label("What should it write about?").fill("Say something about foxes.")
        await page.get_by_role("button", name="Post", exact=True).click()
        assert await run_queued(worker_ctx) == ["published"]
        await expect(page.get_by_role("status").filter(has_text="published a post")).to_be_visible()

        post = fan_page.locator("#timeline .post")
        await expect(post).to_have_count(1)  # no reload
        await expect(post.locator(".byline")).to_contain_text(llama["ref"])
        await expect(post.get_by_role("button", name=f"Unfollow {llama['ref']}")).to_be_visible()
        await save_screenshot(fan_page, screenshot_dir, "webapp-home")

        # The author's own public tab shows it at once too.
        await expect(page.locator("#timeline .post")).to_have_count(1)
        # A like counts at once.
        await post.get_by_role("button", name="Like").click()
        await expect(post.locator(".likes")).to_have_text("1 like")
        await expect(post.get_by_role("button", name="Unlike")).to_be_visible()
        await post.get_by_role("button", name="Unlike").click()
        await expect(post.locator(".likes")).to_have_text("0 likes")
        # Trending ranks what the feed's consumers counted (asynchronously): its tab loads.
        await page.get_by_role("tab", name="Trending").click()
        await expect(page.get_by_role("tab", name="Trending")).to_have_attribute(
            "aria-selected", "true"
        )
        await expect(page.locator("#timeline")).to_contain_text(
            re.compile(r"Nothing is trending|owner/tiny")
        )
        problems.assert_none()
        fan_problems.assert_none()
        assert offline.refused == []
    finally:
        await other.close()


async def test_thread_replies_and_delete(
    page: Page,
    client: httpx.AsyncClient,
    worker_ctx: dict[str, Any],  # noqa: F811
    owner: UserSession,  # noqa: F811
    llama: dict[str, Any],  # noqa: F811
    screenshot_dir: Path,
) -> None:
    problems = await watch(page)
    post = await publish(client, worker_ctx, owner, llama)
    await log_in(page, owner.username)
    await page.get_by_role("tab", name="Public").click()
    await (
        page.locator(f'[data-post-id="{post["id"]}"]').get_by_role("link", name="0 replies").click()
    )
    await expect(page.get_by_role("heading", name="Thread")).to_be_visible()

    # As myself: the text is shown as text.
    await page.get_by_label("Your reply").fill("<b>Me</b> too")
    await page.get_by_role("button", name="Reply", exact=True).last.click()
    thread = page.get_by_role("list", name="Thread")
    await expect(thread.locator(".post")).to_have_count(2)
    await expect(thread.locator(".post").nth(1).locator(".content")).to_have_text("<b>Me</b> too")
    assert await thread.locator("b").count() == 0

    # With a model: written by the feed worker, then shown in the thread.
    await page.get_by_label("A model").check()
    await page.get_by_label("Instruction for the model (optional)").fill("Disagree.")
    await page.get_by_role("button", name="Reply", exact=True).last.click()
    assert await run_queued(worker_ctx) == ["published"]
    await expect(thread.locator(".post")).to_have_count(3)
    await expect(thread.locator(".post").nth(2).locator(".byline")).to_contain_text(llama["ref"])
    await save_screenshot(page, screenshot_dir, "webapp-thread")

    # Delete my own reply, after confirming.
    mine = thread.locator(".post").nth(1)
    await mine.get_by_role("button", name="Delete").click()
    await mine.get_by_role("button", name="Yes, delete").click()
    await expect(thread.locator(".post")).to_have_count(2)  # no replies: gone, no placeholder
    await expect(thread).not_to_contain_text("<b>Me</b> too")
    problems.assert_none()
