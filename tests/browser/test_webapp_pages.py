"""Every page of the web app loads with no console error and no CSP violation, at desktop and
phone width; a failed API call shows its `detail`, never a blank page; and the tiny llama
answers in the chat like any uploaded model (with its version in the metadata)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, expect

from tests.browser.harness import OfflineGuard, save_screenshot
from tests.browser.webapp import log_in, watch
from tests.factories import UserSession
from tests.feed.conftest import (  # noqa: F401 - fixtures
    llama,
    owner,
    publish,
    tiny_llama_dir,
    worker_ctx,
)

PHONE = {"width": 375, "height": 740}


async def test_every_page_loads_cleanly(
    page: Page,
    offline: OfflineGuard,
    client: httpx.AsyncClient,
    worker_ctx: dict[str, Any],  # noqa: F811
    owner: UserSession,  # noqa: F811
    llama: dict[str, Any],  # noqa: F811
    screenshot_dir: Path,
) -> None:
    problems = await watch(page)
    post = await publish(client, worker_ctx, owner, llama)
    created = await client.post(
        "/api/v1/conversations",
        headers=owner.headers,
        json={"model": llama["ref"], "title": "Lighthouses"},
    )
    assert created.status_code == 201, created.text
    conversation = created.json()["id"]
    # A model made through the API (the llama fixture's version row is written by hand, in a
    # shape the hub's version listing does not read back).
    await client.patch("/api/v1/users/me", json={"is_model_developer": True}, headers=owner.headers)
    made = await client.post(
        "/api/v1/models",
        json={"name": "Haiku", "card": "# Haiku\n\nShort *poems*."},
        headers=owner.headers,
    )
    assert made.status_code == 201, made.text

    for path, heading in [("/#/login", "Log in"), ("/#/signup", "Create an account")]:
        await page.goto(path)
        await expect(page.get_by_role("heading", name=heading)).to_be_visible()
    await log_in(page, owner.username)
    pages = [
        ("/#/", "Home", "webapp-home-owner"),
        ("/#/chat", "New conversation", "webapp-chat-new"),
        (f"/#/chat/{conversation}", "Lighthouses", "webapp-chat-conversation"),
        (f"/#/posts/{post['id']}", "Thread", None),
        ("/#/models", "Models", "webapp-models"),
        (f"/#/models/{made.json()['id']}", "Haiku", "webapp-model-page"),
        ("/#/notifications", "Notifications", "webapp-notifications"),
        ("/#/account", "Account", "webapp-account"),
        ("/#/nowhere", "Page not found", None),
    ]
    for size in ({"width": 1280, "height": 900}, PHONE):
        await page.set_viewport_size(size)
        for path, heading, shot in pages:
            await page.goto(path)
            await page.reload()  # each page also straight from a fresh load
            await expect(
                page.get_by_role("heading", name=heading, exact=True, level=1)
            ).to_be_visible()
            await expect(page.get_by_role("navigation", name="Main")).to_be_visible()
            assert await page.evaluate("document.documentElement.scrollWidth") <= size["width"]
            if shot:
                suffix = "-phone" if size == PHONE else ""
                await save_screenshot(page, screenshot_dir, shot + suffix)
    problems.assert_none()
    assert offline.refused == []


async def test_a_failed_call_shows_the_apis_detail(
    page: Page,
    owner: UserSession,  # noqa: F811
) -> None:
    await log_in(page, owner.username)
    await page.goto(f"/#/chat/{uuid.uuid4()}")
    banner = page.get_by_role("alert")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("onversation")  # the API's detail, with its request id
    await expect(banner).to_contain_text("request ")
    # The shell stays usable: the list and the navigation are there, the banner dismisses.
    await expect(page.get_by_role("complementary", name="Conversations")).to_be_visible()
    await page.get_by_role("button", name="Dismiss").click()
    await expect(banner).to_be_hidden()


async def test_the_tiny_llama_answers_in_the_chat(
    page: Page,
    owner: UserSession,  # noqa: F811
    llama: dict[str, Any],  # noqa: F811
) -> None:
    problems = await watch(page)
    await log_in(page, owner.username)
    await page.goto("/#/chat")
    await page.get_by_label("Model", exact=True).select_option(llama["ref"])
    await page.locator("summary", has_text="Parameters").click()
    await page.get_by_label("Max tokens").fill("8")
    await page.get_by_label("Temperature").fill("0")
    await page.get_by_label("Message", exact=True).fill("Hello there")
    await page.get_by_role("button", name="Start").click()
    done = page.locator('.message.assistant[data-status="complete"]')
    await expect(done.locator(".meta")).to_contain_text("8 tokens")
    # "version N (<id prefix>)" once the hub's versions are read; "version <id prefix>" before.
    await expect(done.locator(".meta")).to_contain_text(llama["version_id"][:8])
    await expect(done.locator(".meta")).to_contain_text("length")
    problems.assert_none()
