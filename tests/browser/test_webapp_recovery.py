"""Forgot password and email verification in the web app, with the mails going through a
real SMTP server (aiosmtpd) and the links in them opened as a person would: the reset page
sets a new password once, the verify page verifies once, the account page resends the
verification mail; every failure shows the API's detail."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

from services.accounts.recovery.service import FORGOT_ACCEPTED
from tests.accounts.recovery.conftest import (  # noqa: F401 - fixtures
    Mailbox,
    mailbox,
    running_mail_worker,
    smtp_port,
    worker_settings,
)
from tests.browser.harness import save_screenshot
from tests.browser.webapp import PageProblems, log_in, sign_up, watch
from tests.conftest import Platform
from tests.factories import register

NEW_PASSWORD = "a-much-better-one-77"


@pytest.fixture
async def links_worker(
    platform: Platform,
    smtp_port: int,  # noqa: F811
    mailbox: Mailbox,  # noqa: F811
) -> AsyncIterator[None]:
    """The accounts worker's mail consumer, its links pointing at the test gateway."""
    settings = worker_settings(
        platform,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_security="none",
        public_base_url=platform.gateway_url,
    )
    async with running_mail_worker(platform, settings):
        yield


def expect_refusals(problems: PageProblems, statuses: set[int]) -> None:
    """The page's problems, but for Chromium's console line about each refused API call the
    test provoked on purpose (the page showed its detail)."""
    pattern = re.compile(r"^Failed to load resource: the server responded with a status of (\d+)")
    unexpected = []
    for line in problems.console:
        found = pattern.match(line)
        if not (found and int(found.group(1)) in statuses):
            unexpected.append(line)
    problems.console = unexpected
    problems.assert_none()


def link_in(message: EmailMessage, platform: Platform) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    found = re.search(r"(http\S+token=[A-Za-z0-9_-]+)", body.get_content())
    assert found, body.get_content()
    link = found.group(1)
    assert link.startswith(platform.gateway_url + "/#/")
    return link


async def test_forgot_password_mail_link_and_new_password(
    page: Page,
    platform: Platform,
    client: httpx.AsyncClient,
    mailbox: Mailbox,  # noqa: F811
    links_worker: None,
    screenshot_dir: Path,
) -> None:
    problems = await watch(page)
    user = await register(client, "forgetful")
    await mailbox.wait_for(1)  # the registration's verification mail

    await page.goto("/#/login")
    await page.get_by_role("link", name="Forgot your password?").click()
    await expect(page.get_by_role("heading", name="Forgot your password?")).to_be_visible()
    await page.get_by_label("Username or email").fill("forgetful@example.com")
    await page.get_by_role("button", name="Send reset link").click()
    await expect(page.get_by_role("status")).to_have_text(FORGOT_ACCEPTED)
    await save_screenshot(page, screenshot_dir, "webapp-forgot-password", full_page=False)

    mail = (await mailbox.wait_for(2))[1]
    assert mail["Subject"] == "Reset your llmnet password"
    link = link_in(mail, platform)
    assert "/#/reset-password?token=" in link
    await page.goto(link)
    await expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    # The token leaves the address bar (and the history) once read.
    assert "token" not in page.url

    # A weak password: the API's detail, and the link still works afterwards.
    await page.get_by_label("New password", exact=True).fill("short")
    await page.get_by_label("Repeat the new password").fill("short")
    await page.get_by_role("button", name="Set new password").click()
    await expect(page.get_by_role("alert")).to_contain_text("The password")

    await page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    await page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Set new password").click()
    await expect(page.get_by_role("heading", name="Password changed")).to_be_visible()
    await page.get_by_role("link", name="Log in").last.click()
    await log_in(page, user["username"], NEW_PASSWORD)

    # A spent link says so, in words.
    await page.goto(link)
    await page.get_by_label("New password", exact=True).fill(NEW_PASSWORD + "x")
    await page.get_by_label("Repeat the new password").fill(NEW_PASSWORD + "x")
    await page.get_by_role("button", name="Set new password").click()
    await expect(page.get_by_role("alert")).to_contain_text("This link was used already")
    expect_refusals(problems, {400, 422})


async def test_verify_email_by_link_and_resend_from_the_account_page(
    page: Page,
    platform: Platform,
    client: httpx.AsyncClient,
    mailbox: Mailbox,  # noqa: F811
    links_worker: None,
    screenshot_dir: Path,
) -> None:
    problems = await watch(page)
    await sign_up(page, "checkme")
    first = (await mailbox.wait_for(1))[0]
    assert first["Subject"] == "Verify your email address on llmnet"

    await page.goto("/#/account")
    await expect(page.get_by_text("checkme@example.com is not verified yet")).to_be_visible()
    await page.get_by_role("button", name="Resend verification email").click()
    await expect(page.get_by_role("status").filter(has_text="on its way")).to_have_text(
        "A verification link is on its way to checkme@example.com."
    )
    second = (await mailbox.wait_for(2))[1]
    link = link_in(second, platform)
    assert "/#/verify-email?token=" in link

    await page.goto(link)
    await expect(page.get_by_role("status")).to_have_text(
        "checkme@example.com is verified. Thank you!"
    )
    await save_screenshot(page, screenshot_dir, "webapp-verify-email", full_page=False)
    await page.get_by_role("link", name="Go to your account").click()
    await expect(page.get_by_text("✓ checkme@example.com is verified.")).to_be_visible()
    await expect(page.get_by_role("button", name="Resend verification email")).to_have_count(0)

    # Verifying spent the first mail's link too: it says so, and the page stays usable.
    await page.goto(link_in(first, platform))
    await expect(page.get_by_role("alert")).to_contain_text("This link was used already")
    await expect(page.get_by_role("link", name="Go to your account")).to_be_visible()
    expect_refusals(problems, {400})


async def test_a_link_without_a_token_and_the_phone_width(page: Page) -> None:
    problems = await watch(page)
    await page.set_viewport_size({"width": 375, "height": 740})
    await page.goto("/#/reset-password")
    await expect(page.get_by_role("alert")).to_contain_text("this address has no token")
    await page.get_by_role("link", name="Ask for a new link").click()
    await expect(page.get_by_role("heading", name="Forgot your password?")).to_be_visible()
    # Keyboard only: type the login, Tab to the button, press Enter.
    await page.get_by_label("Username or email").type("nobody")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("status")).to_have_text(FORGOT_ACCEPTED)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 375
    problems.assert_none()
