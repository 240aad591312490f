"""The admin pages in the web app: finding users, banning (with a reason) and unbanning,
roles, the audit log of one user and by action, daily token quotas, and moderation (a search
of everyone's messages, paged, exported as CSV); shown to admins only, every refusal shown
with the API's detail."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, expect

from tests.browser.harness import save_screenshot
from tests.browser.webapp import log_in, watch
from tests.conftest import Platform
from tests.factories import UserSession, admin_session, user_session
from tests.inference.conftest import llama, owner, tiny_llama_dir  # noqa: F401 - fixtures


async def test_users_bans_roles_audit_and_quotas(
    page: Page, platform: Platform, client: httpx.AsyncClient, screenshot_dir: Path
) -> None:
    problems = await watch(page)
    admin = await admin_session(client, platform)
    troll = await user_session(client, "troll")
    await user_session(client, "bystander")
    await log_in(page, admin.username)

    await page.get_by_role("link", name="Admin").click()
    await expect(page.get_by_role("heading", name="Admin", level=1)).to_be_visible()
    users = page.get_by_role("table", name="Users")
    await page.get_by_label("Search users").fill("trol")
    await expect(users.locator("tbody tr")).to_have_count(1)
    row = users.locator(f'tr[data-user-id="{troll.id}"]')
    await expect(row).to_contain_text("troll@example.com")
    await expect(row).to_contain_text("not verified")

    # Ban: the reason field takes the focus; Enter confirms.
    await row.get_by_role("button", name="Ban @troll").click()
    reason = row.get_by_label("Reason for banning @troll")
    await expect(reason).to_be_focused()
    await reason.fill("spam links")
    await page.keyboard.press("Enter")
    await expect(row).to_contain_text("banned")
    await expect(row).to_contain_text("spam links")
    assert (await client.get("/api/v1/users/troll")).status_code == 404
    await save_screenshot(page, screenshot_dir, "webapp-admin-users")
    await row.get_by_role("button", name="Unban @troll").click()
    await expect(row.get_by_role("button", name="Ban @troll")).to_be_visible()
    # The profile is back: asked until it answers (seen once to trail the page by a moment
    # on a loaded machine, which a person would never notice).
    for _ in range(50):
        if (await client.get("/api/v1/users/troll")).status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert (await client.get("/api/v1/users/troll")).status_code == 200

    await row.get_by_label("Role of @troll").select_option("admin")
    await row.get_by_role("button", name="Set role for @troll").click()
    await expect(page.get_by_role("status")).to_have_text("@troll: active, admin.")
    listed = await client.get("/api/v1/admin/users", params={"q": "troll"}, headers=admin.headers)
    assert listed.json()["items"][0]["role"] == "admin"

    # The audit log of that user: newest first, names instead of ids.
    await row.get_by_role("link", name="Audit log of @troll").click()
    audit = page.get_by_role("table", name="Audit log")
    await expect(audit.locator("tbody tr")).to_have_count(5)
    first = audit.locator("tbody tr").first
    await expect(first).to_contain_text("user.role_changed")
    await expect(first).to_contain_text(f"@{admin.username}")
    await expect(first).to_contain_text('{"role":"admin"}')
    await expect(page.get_by_label("User", exact=True)).to_have_value("troll")
    await page.get_by_label("Action").select_option("user.banned")
    await expect(audit.locator("tbody tr")).to_have_count(1)
    await expect(audit).to_contain_text('{"reason":"spam links"}')
    await save_screenshot(page, screenshot_dir, "webapp-admin-audit")
    # An unknown name is said so, in words.
    await page.get_by_label("User", exact=True).fill("ghost")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_role("alert")).to_contain_text("No user named “ghost”.")

    # Quotas: read, set, back to the default.
    await page.get_by_role("link", name="Quotas").click()
    await page.get_by_label("Username").fill("troll")
    await page.get_by_role("button", name="Show quota").click()
    summary = page.locator(".quota-summary")
    await expect(summary).to_have_text("@troll: unlimited, 0 used today.")
    await page.get_by_label("Daily token quota").fill("500")
    await page.get_by_role("button", name="Save quota").click()
    await expect(summary).to_have_text("@troll: 500 tokens a day, 0 used today.")
    quota = await client.get(f"/api/v1/usage/quotas/{troll.id}", headers=admin.headers)
    assert quota.json()["daily_tokens"] == 500
    await page.get_by_role("button", name="Use the default").click()
    await expect(summary).to_have_text("@troll: unlimited, 0 used today.")
    await expect(page.get_by_label("Daily token quota")).to_have_value("")
    problems.assert_none()


async def test_refusals_show_the_apis_detail(
    page: Page, platform: Platform, client: httpx.AsyncClient
) -> None:
    problems = await watch(page)
    admin = await admin_session(client, platform)
    await log_in(page, admin.username)
    await page.goto("/#/admin/users")
    row = page.get_by_role("table", name="Users").locator(f'tr[data-user-id="{admin.id}"]')
    await row.get_by_role("button", name=f"Ban @{admin.username}").click()
    await row.get_by_label(f"Reason for banning @{admin.username}").fill("oops")
    await row.get_by_role("button", name="Confirm ban").click()
    await expect(page.get_by_role("alert")).to_contain_text("You cannot ban yourself.")
    await row.get_by_label(f"Role of @{admin.username}").select_option("user")
    await row.get_by_role("button", name=f"Set role for @{admin.username}").click()
    await expect(page.get_by_role("alert")).to_contain_text("You cannot demote yourself.")
    assert problems.uncaught == []
    assert all(re.search(r"status of 400", line) for line in problems.console), problems.console


async def test_only_admins_see_the_admin_pages(page: Page, client: httpx.AsyncClient) -> None:
    problems = await watch(page)
    user = await user_session(client)
    await log_in(page, user.username)
    await expect(page.get_by_role("link", name="Explore")).to_be_visible()
    await expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    await page.goto("/#/admin")
    await expect(page.get_by_role("alert")).to_contain_text("This page is for administrators")
    problems.assert_none()


async def test_the_admin_pages_fit_a_phone(
    page: Page, platform: Platform, client: httpx.AsyncClient
) -> None:
    problems = await watch(page)
    admin = await admin_session(client, platform)
    await user_session(client)
    await log_in(page, admin.username)
    await page.set_viewport_size({"width": 375, "height": 740})
    for tab, shown in (("users", "Users"), ("audit", "Audit log"), ("moderation", "Messages")):
        await page.goto(f"/#/admin/{tab}")
        await expect(
            page.get_by_role("table", name=shown).locator("tbody tr").first
        ).to_be_visible()
        assert await page.evaluate("document.documentElement.scrollWidth") <= 375
    problems.assert_none()


async def _imported(
    client: httpx.AsyncClient, user: UserSession, model: str, title: str, turns: list[str]
) -> str:
    """A conversation of `user`'s, its turns alternating user and assistant, through the
    public import (no model runs); its id."""
    messages: list[dict[str, Any]] = []
    for n, content in enumerate(turns):
        answer = n % 2 == 1
        messages.append(
            {
                "id": str(uuid.uuid4()),
                "parent_id": messages[-1]["id"] if messages else None,
                "role": "assistant" if answer else "user",
                "content": content,
                "model_ref": model if answer else None,
            }
        )
    document = {
        "format": "llmnet.conversation",
        "version": 1,
        "conversation": {"model_ref": model, "title": title},
        "messages": messages,
    }
    response = await client.post(
        "/api/v1/conversations/import", json=document, headers=user.headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_moderation_search_pages_and_exports(
    page: Page,
    platform: Platform,
    client: httpx.AsyncClient,
    llama: dict[str, Any],  # noqa: F811
    screenshot_dir: Path,
) -> None:
    problems = await watch(page)
    admin = await admin_session(client, platform)
    alice = await user_session(client, "alice")
    bob = await user_session(client, "bob")
    ref = llama["ref"]
    await _imported(
        client, alice, ref, "Trip planning", ["Where can I see a quokka?", "On Rottnest Island."]
    )
    await _imported(client, bob, ref, "Markup", ["Is <img src=x onerror=alert(1)> a narwhal?"])
    await _imported(client, bob, ref, "Airships", [f"zeppelin fact {n}" for n in range(30)])
    await log_in(page, admin.username)
    await page.goto("/#/admin/users")
    await page.get_by_role("link", name="Moderation").click()
    messages = page.get_by_role("table", name="Messages")
    rows = messages.locator("tbody tr")
    await expect(rows).to_have_count(25)  # everything, newest first, a page at a time

    # A word: exactly its message, with who wrote it, where, and when.
    await page.get_by_label("Search messages").fill("quokka")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("@alice")
    await expect(rows.first).to_contain_text("user")
    await expect(rows.first).to_contain_text("Trip planning")
    await expect(rows.first.locator(".moderated-text")).to_have_text("Where can I see a quokka?")
    await expect(more := page.get_by_role("button", name="More messages")).to_be_hidden()

    # The export downloads what the search shows, as CSV.
    async with page.expect_download() as downloaded:
        await page.get_by_role("button", name="Export CSV").click()
    download = await downloaded.value
    assert download.suggested_filename.startswith("messages-")
    assert download.suggested_filename.endswith(".csv")
    exported = list(csv.DictReader(io.StringIO(Path(await download.path()).read_text())))
    assert [(r["author_id"], r["content"]) for r in exported] == [
        (alice.id, "Where can I see a quokka?")
    ]
    await expect(page.get_by_text("Exported the matching messages as CSV.")).to_be_visible()

    # Markup is text: shown as written, never parsed into an element.
    await page.get_by_label("Search messages").fill("narwhal")
    await expect(rows).to_have_count(1)
    await expect(rows.first.locator(".moderated-text")).to_have_text(
        "Is <img src=x onerror=alert(1)> a narwhal?"
    )
    await expect(rows.first).to_contain_text("@bob")
    assert await messages.locator("img").count() == 0
    # The web-search syntax: either word, from both users.
    await page.get_by_label("Search messages").fill("quokka or narwhal or island")
    await expect(rows).to_have_count(3)
    await save_screenshot(page, screenshot_dir, "webapp-admin-moderation", full_page=False)

    # Pages follow the API's cursor; the author filter narrows by username.
    await page.get_by_label("Search messages").fill("zeppelin")
    await expect(rows).to_have_count(25)
    await more.click()
    await expect(rows).to_have_count(30)
    await expect(more).to_be_hidden()
    assert len(set(await rows.evaluate_all("rs => rs.map(r => r.dataset.messageId)"))) == 30
    await page.get_by_label("Role").select_option("assistant")
    await expect(rows).to_have_count(15)
    await expect(rows.first).to_contain_text(ref)
    await page.get_by_label("Author").fill("alice")
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_text("No message matches.")
    await page.get_by_label("Author").fill("bob")
    await page.get_by_label("Author").press("Enter")  # the keyboard submits the filters
    await expect(rows).to_have_count(15)

    # A conversation's link lists its messages, and only them.
    await page.get_by_label("Search messages").fill("quokka")
    await page.get_by_label("Author").fill("")
    await page.get_by_label("Role").select_option("")
    await expect(rows).to_have_count(1)
    of_trip = "Messages of the conversation “Trip planning”"
    await rows.first.get_by_role("link", name=of_trip).click()
    await expect(page.get_by_role("status").filter(has_text=of_trip)).to_be_visible()
    await expect(rows).to_have_count(2)
    # (Imported together, the two share a time: their order is the ids'.)
    texts = await rows.locator(".moderated-text").all_inner_texts()
    assert sorted(texts) == ["On Rottnest Island.", "Where can I see a quokka?"]
    problems.assert_none()


async def test_moderation_refusals_show_the_reason(
    page: Page, platform: Platform, client: httpx.AsyncClient
) -> None:
    problems = await watch(page)
    admin = await admin_session(client, platform)
    await log_in(page, admin.username)
    await page.goto("/#/admin/moderation")
    await expect(page.get_by_role("table", name="Messages")).to_contain_text("No message matches.")
    await page.get_by_label("Author").fill("ghost")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_role("alert")).to_contain_text("No user named “ghost”.")
    await page.get_by_label("Author").fill("")
    await page.get_by_label("Model").fill("a/b/c")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_role("alert")).to_contain_text("model_ref")
    assert problems.uncaught == []
    assert all(re.search(r"status of 422", line) for line in problems.console), problems.console
