"""Signing up, logging in and out in the web app; a reload keeps the session (login cookie)."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.async_api import Page, expect

from tests.browser.harness import OfflineGuard, save_screenshot
from tests.browser.webapp import log_in, sign_up, watch
from tests.factories import register


async def test_sign_up_log_out_log_in_and_reload(
    page: Page, offline: OfflineGuard, screenshot_dir: Path
) -> None:
    problems = await watch(page)
    await page.goto("/#/signup")
    await expect(page.get_by_role("heading", name="Create an account")).to_be_visible()
    await save_screenshot(page, screenshot_dir, "webapp-signup", full_page=False)
    await sign_up(page, "webada")

    # The refresh token is an HttpOnly, SameSite=Strict cookie on the cookie-auth path only.
    cookies = {c["name"]: c for c in await page.context.cookies()}
    refresh = cookies["llmnet_refresh"]
    assert refresh["httpOnly"]
    assert refresh["sameSite"] == "Strict"
    assert refresh["path"] == "/api/v1/auth/cookie"
    assert not cookies["llmnet_csrf"]["httpOnly"]
    # ... and nothing of the session is in storage scripts could read later.
    stored = await page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)")
    assert "eyJ" not in stored

    await page.reload()
    await expect(page.locator("#account")).to_contain_text("@webada")

    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert "llmnet_refresh" not in {c["name"] for c in await page.context.cookies()}
    await page.reload()
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    await save_screenshot(page, screenshot_dir, "webapp-login", full_page=False)

    await log_in(page, "webada")
    # A request of the signed-in page still in flight as the session ended (its token revoked)
    # may have answered 401, which the browser logs; nothing else may have gone wrong.
    problems.console[:] = [m for m in problems.console if "status of 401" not in m]
    problems.assert_none()
    assert offline.refused == []


async def test_a_failed_login_shows_the_apis_detail(page: Page, client: httpx.AsyncClient) -> None:
    user = await register(client)
    await page.goto("/#/login")
    await page.get_by_label("Username or email").fill(user["username"])
    await page.get_by_label("Password").fill("not-the-password-1")
    await page.get_by_role("button", name="Log in").click()
    banner = page.get_by_role("alert")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("password")
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()


async def test_phone_width_keeps_the_forms_usable(page: Page, screenshot_dir: Path) -> None:
    problems = await watch(page)
    await page.set_viewport_size({"width": 375, "height": 740})
    await page.goto("/#/login")
    await page.keyboard.press("Tab")  # the skip link, then the shell's links, by keyboard
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375
    await save_screenshot(page, screenshot_dir, "webapp-login-phone")
    problems.assert_none()
