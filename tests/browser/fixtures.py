"""Browser fixtures, registered for the whole suite by tests/conftest.py (`pytest_plugins`).

`browser` starts Chromium once per run; `page` is a fresh context and page per test, pointed
at the `platform` fixture's gateway (relative `page.goto("/docs")` works) and refused every
request off the machine (`offline.refused` lists them). A test that fails leaves a full-page
screenshot in `screenshot_dir` (`BROWSER_SCREENSHOT_DIR`, else pytest's temp dir) and names
it on the terminal, with the page's console errors and refused requests.

Without Chromium the browser tests are skipped, except under CI (`CI` set), where they fail.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Error, Page, async_playwright, expect

from tests.browser.harness import OfflineGuard, find_chromium, launch_chromium, save_screenshot
from tests.conftest import Platform

_CALL_FAILED = pytest.StashKey[bool]()
# Generous for a loaded 2-core CI machine, yet a broken page fails in seconds, not minutes.
_TIMEOUT_MS = 20_000
expect.set_options(timeout=_TIMEOUT_MS)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("BROWSER_SCREENSHOT_DIR")
    return Path(configured) if configured else tmp_path_factory.getbasetemp() / "screenshots"


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = find_chromium()
    if executable is None:
        message = "no Chromium: install Debian's `chromium` (or set CHROMIUM to its path)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright, executable)
        yield browser
        await browser.close()


@pytest.fixture
def offline() -> OfflineGuard:
    return OfflineGuard()


@pytest.fixture
async def page(
    browser: Browser,
    platform: Platform,
    offline: OfflineGuard,
    screenshot_dir: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Page]:
    context = await browser.new_context(
        base_url=platform.gateway_url,
        viewport={"width": 1280, "height": 900},
    )
    context.set_default_timeout(_TIMEOUT_MS)
    await offline.install(context)
    page = await context.new_page()
    # What the page said went wrong, shown with the screenshot when the test fails.
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"console: {message.text}")

    def on_page_error(error: Error) -> None:
        errors.append(f"uncaught: {error.message}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    try:
        yield page
    finally:
        if request.node.stash.get(_CALL_FAILED, False):
            path = await save_screenshot(page, screenshot_dir, request.node.nodeid)
            reporter = request.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(f"screenshot of the failed page: {path}")
                for line in [*errors, *(f"refused: {url}" for url in offline.refused)]:
                    reporter.write_line(f"  {line}")
        await context.close()
