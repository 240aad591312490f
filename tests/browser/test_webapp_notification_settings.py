"""Notification settings in the web app: kinds muted and unmuted with the keyboard, kept
across a reload, and honoured (a muted kind never reaches the list); a fine-tune's
notification links to its fine-tune page."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from playwright.async_api import Page, expect

from services.models_hub.fine_tunes.schemas import FineTuneEvent
from services.models_hub.models import FineTuneStatus
from shared.db import session_scope
from shared.events import record_event
from tests.browser.webapp import log_in, watch
from tests.conftest import Platform
from tests.factories import UserSession, user_session
from tests.feed.conftest import (  # noqa: F401 - fixtures
    llama,
    owner,
    publish,
    tiny_llama_dir,
    worker_ctx,
)
from tests.feed.notifications.conftest import (  # noqa: F401 - fixture
    Notifier,
    notifications_of,
    notifier,
)


async def test_mute_and_unmute_kinds_with_the_keyboard(
    page: Page,
    client: httpx.AsyncClient,
    platform: Platform,
    worker_ctx: dict[str, Any],  # noqa: F811
    notifier: Notifier,  # noqa: F811
    owner: UserSession,  # noqa: F811
    llama: dict[str, Any],  # noqa: F811
) -> None:
    problems = await watch(page)
    post = await publish(client, worker_ctx, owner, llama)
    job = uuid.uuid4()
    finished = FineTuneEvent(fine_tune_id=job, status=FineTuneStatus.SUCCEEDED)
    payload = {**finished.model_dump(mode="json"), "model_id": llama["id"], "owner_id": owner.id}
    async with session_scope(platform.sessionmaker) as session:
        record_event(session, "finetune.completed", payload, source="models_hub")
    await notifier.deliver()

    await page.set_viewport_size({"width": 390, "height": 844})
    await log_in(page, owner.username)
    await page.goto("/#/notifications")
    items = page.get_by_role("list", name="Notifications").get_by_role("listitem")
    await expect(items).to_have_count(1)
    await expect(
        items.get_by_role("link", name=f"Your fine-tune of {llama['ref']} finished.")
    ).to_have_attribute("href", f"#/fine-tunes/{job}")

    liked = page.get_by_label("Someone liked a post")
    await liked.focus()
    await page.keyboard.press("Space")
    await page.keyboard.press("Enter")  # submits the settings form
    status = page.get_by_role("status").filter(has_text="Muted")
    await expect(status).to_have_text("Muted: 1 kind. Someone liked a post.")
    assert not await page.evaluate("document.documentElement.scrollWidth > window.innerWidth")

    await page.reload()
    await expect(page.get_by_label("Someone liked a post")).to_be_checked()
    fan = await user_session(client)
    assert (
        await client.post(f"/api/v1/posts/{post['id']}/like", headers=fan.headers)
    ).status_code == 200
    await notifier.deliver()
    assert len(await notifications_of(client, owner)) == 1  # muted: none made at all
    await expect(items).to_have_count(1)
    await expect(page.locator(".badge")).to_have_text("1")  # the fine-tune's, still unread

    await page.get_by_label("Someone liked a post").uncheck()
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status").filter(has_text="Nothing muted")).to_have_text(
        "Nothing muted: every kind is delivered."
    )
    other = await user_session(client)
    await client.post(f"/api/v1/posts/{post['id']}/like", headers=other.headers)
    await notifier.deliver()
    await expect(items).to_have_count(2)  # live, no reload
    await expect(items.first).to_contain_text(f"@{other.username} liked")
    problems.assert_none()
