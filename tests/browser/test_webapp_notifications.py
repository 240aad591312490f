"""Notifications in the web app: the unread badge goes up live (the notifications stream),
the list shows what happened, marking read brings the badge down, and kinds can be muted."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.async_api import Page, expect

from tests.browser.webapp import log_in, watch
from tests.factories import UserSession, user_session
from tests.feed.conftest import (  # noqa: F401 - fixtures
    llama,
    owner,
    publish,
    tiny_llama_dir,
    worker_ctx,
)
from tests.feed.notifications.conftest import Notifier, notifier  # noqa: F401 - fixture


async def test_badge_list_mark_read_and_mute(
    page: Page,
    client: httpx.AsyncClient,
    worker_ctx: dict[str, Any],  # noqa: F811
    notifier: Notifier,  # noqa: F811
    owner: UserSession,  # noqa: F811
    llama: dict[str, Any],  # noqa: F811
) -> None:
    problems = await watch(page)
    post = await publish(client, worker_ctx, owner, llama)
    await log_in(page, owner.username)
    link = page.get_by_role("link", name="Notifications")
    await expect(link).to_have_accessible_name("Notifications")

    fan = await user_session(client)
    liked = await client.post(f"/api/v1/posts/{post['id']}/like", headers=fan.headers)
    assert liked.status_code == 200
    await notifier.deliver()
    await expect(link).to_have_accessible_name("Notifications, 1 unread")  # live, no reload
    await expect(page.locator(".badge")).to_have_text("1")

    await link.click()
    item = page.get_by_role("list", name="Notifications").get_by_role("listitem")
    await expect(item).to_have_count(1)
    await expect(item).to_contain_text(f"@{fan.username} liked")
    await item.get_by_role("button", name="Mark read").click()
    await expect(page.locator(".badge")).to_be_hidden()
    await expect(item.get_by_role("button", name="Mark read")).to_have_count(0)

    # A new one arrives on the open page too.
    other = await user_session(client)
    await client.post(f"/api/v1/posts/{post['id']}/like", headers=other.headers)
    await notifier.deliver()
    await expect(item).to_have_count(2)
    await expect(item.first).to_contain_text(f"@{other.username} liked")
    await page.get_by_role("button", name="Mark all read").click()
    await expect(page.locator(".badge")).to_be_hidden()

    await page.get_by_label("Someone liked a post").check()
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status").filter(has_text="Muted: 1 kind.")).to_be_visible()
    preferences = await client.get("/api/v1/notifications/preferences", headers=owner.headers)
    assert preferences.json()["muted"] == ["post_liked"]
    problems.assert_none()
