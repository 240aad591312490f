"""The admin pages in the web app: finding users, banning (with a reason) and unbanning,
roles, the audit log of one user and by action, and daily token quotas; shown to admins
only, every refusal shown with the API's detail."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.async_api import Page, expect

from tests.browser.harness import save_screenshot
from tests.browser.webapp import log_in, watch
from tests.conftest import Platform
from tests.factories import admin_session, user_session


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
    for tab, shown in (("users", "Users"), ("audit", "Audit log")):
        await page.goto(f"/#/admin/{tab}")
        await expect(
            page.get_by_role("table", name=shown).locator("tbody tr").first
        ).to_be_visible()
        assert await page.evaluate("document.documentElement.scrollWidth") <= 375
    problems.assert_none()
