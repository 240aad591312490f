"""Helpers for tests in a real browser: the system's headless Chromium driven by Playwright.

The browser is Debian's `chromium` (`.ci/run` installs it when missing), never one Playwright
downloads: `playwright install` needs the internet, which CI does not have. Pages are only let
reach loopback, so a page that still wants a CDN or a font host is caught rather than slowed.

Exports: find_chromium, launch_chromium, OfflineGuard, login_through_api, save_screenshot.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from playwright.async_api import Browser, BrowserContext, Page, Playwright, Route

from tests.factories import UserSession, user_session

# Without the background-networking flags Chromium keeps calling Google's services (updates,
# sync, safe browsing) and misbehaves on a closed network; QUIC and the GPU are never needed.
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium refuses its sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_LOOPBACK_NAMES = {"localhost"}


def find_chromium() -> str | None:
    """The Chromium to drive: `$CHROMIUM` if set, else `chromium` on PATH."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium")


async def launch_chromium(playwright: Playwright, executable: str) -> Browser:
    """One headless browser; Playwright gives it a fresh user data dir of its own."""
    return await playwright.chromium.launch(
        executable_path=executable, headless=True, args=LAUNCH_ARGS
    )


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OfflineGuard:
    """A route handler that lets a context reach loopback only, and lists what it refused."""

    def __init__(self) -> None:
        self.refused: list[str] = []

    async def install(self, context: BrowserContext) -> None:
        await context.route("**/*", self._handle)

    async def _handle(self, route: Route) -> None:
        url = route.request.url
        if is_loopback(url):
            await route.continue_()
        else:
            self.refused.append(url)
            await route.abort("internetdisconnected")


async def login_through_api(
    client: httpx.AsyncClient, context: BrowserContext | None = None
) -> UserSession:
    """A new user registered and logged in through the gateway's API, not through a page.

    With `context`, every request its pages send carries the user's access token, for tests
    of pages that are not about logging in.
    """
    user = await user_session(client)
    if context is not None:
        await context.set_extra_http_headers(user.headers)
    return user


async def save_screenshot(
    page: Page, directory: Path, name: str, *, full_page: bool = True
) -> Path:
    """The page (all of it, or what the window shows) as `directory/name.png`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name).strip('_')}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path
