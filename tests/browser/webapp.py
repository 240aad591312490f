"""Helpers for the web app's browser tests: what the page reported, and logging in through it.

Exports: PageProblems, watch, sign_up, log_in, new_chat_model_conversation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from playwright.async_api import ConsoleMessage, Dialog, Error, Page, expect

from tests.factories import PASSWORD


@dataclass
class PageProblems:
    """Console errors (CSP violations are console errors too), uncaught errors, dialogs."""

    console: list[str] = field(default_factory=list)
    uncaught: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def assert_none(self) -> None:
        assert self.console == [], self.console
        assert self.uncaught == [], self.uncaught
        assert self.dialogs == [], self.dialogs


# Chromium reports CSP refusals on the console already; this names them unmistakably too.
_REPORT_CSP = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} ${event.blockedURI}`);
});
"""


async def watch(page: Page) -> PageProblems:
    problems = PageProblems()
    await page.add_init_script(_REPORT_CSP)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.console.append(message.text)

    def on_page_error(error: Error) -> None:
        problems.uncaught.append(error.message)

    async def on_dialog(dialog: Dialog) -> None:
        problems.dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    page.on("dialog", on_dialog)
    return problems


async def sign_up(page: Page, username: str, password: str = PASSWORD) -> None:
    await page.goto("/#/signup")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Email").fill(f"{username}@example.com")
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.locator("#account")).to_contain_text(f"@{username}")


async def log_in(page: Page, username: str, password: str = PASSWORD) -> None:
    await page.goto("/#/login")
    await page.get_by_label("Username or email").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator("#account")).to_contain_text(f"@{username}")
