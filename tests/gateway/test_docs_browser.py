"""Swagger UI and ReDoc in a real browser that may reach nothing but this machine.

The pages must render from the gateway's own assets (an offline deployment has no CDN), list
every service's operations, and let a user log in with Authorize and call the API from
"Try it out".
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urljoin

import httpx
from playwright.async_api import Page, expect

from tests.browser.harness import OfflineGuard, save_screenshot
from tests.factories import PASSWORD, register

_DOC_PAGES = ("/docs", "/redoc", "/docs/oauth2-redirect")
# One tag and one path of each service: the merged document really holds them all.
_SERVICE_OPERATIONS = {
    "accounts": ("users", "/api/v1/users/me"),
    "models_hub": ("models", "/api/v1/models"),
    "inference": ("openai", "/v1/chat/completions"),
}


async def test_docs_pages_name_only_local_assets(client: httpx.AsyncClient) -> None:
    for path in _DOC_PAGES:
        response = await client.get(path)
        assert response.status_code == 200, path
        html = response.text
        assert not re.findall(r"(?i)\b(?:https?:)?//[a-z0-9]", html), f"{path} names a host"
        for asset in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert asset.startswith("/docs/static/"), f"{path} loads {asset}"
            fetched = await client.get(urljoin(path, asset))
            assert fetched.status_code == 200, asset
            if asset.endswith(".css"):
                # Every url(...) in the stylesheet is inline data, none a host to fetch.
                for ref in re.findall(r"url\(\s*['\"]?([^'\")]+)", fetched.text):
                    assert ref.startswith("data:"), f"{asset} loads {ref[:80]}"
    docs = (await client.get("/docs")).text
    assert '"persistAuthorization": true' in docs
    assert "/docs/oauth2-redirect" in docs


async def test_swagger_ui_renders_offline_and_tries_an_operation(
    page: Page, offline: OfflineGuard, client: httpx.AsyncClient, screenshot_dir: Path
) -> None:
    user = await register(client)

    await page.goto("/docs")
    for service, (tag, path) in _SERVICE_OPERATIONS.items():
        await expect(page.locator(f'.opblock-tag[data-tag="{tag}"]'), service).to_be_visible()
        await expect(
            page.locator(f'.opblock-summary-path[data-path="{path}"]').first
        ).to_be_visible()
    shot = await save_screenshot(page, screenshot_dir, "swagger-ui", full_page=False)
    assert shot.stat().st_size > 0

    # Authorize with the OAuth2 password flow the merged document declares.
    await page.locator(".auth-wrapper button.authorize").click()
    dialog = page.locator(".dialog-ux")
    await dialog.locator("#oauth_username").fill(user["username"])
    await dialog.locator("#oauth_password").fill(PASSWORD)
    oauth2 = dialog.locator(".auth-container").filter(has_text="OAuth2Password")
    await oauth2.locator("button.authorize").click()
    await expect(oauth2.get_by_role("heading", name="Authorized")).to_be_visible()
    await oauth2.locator("button.btn-done").click()

    # Try it out: GET /api/v1/users/me answers as the user who authorized.
    operation = page.locator(
        '.opblock-get:has(.opblock-summary-path[data-path="/api/v1/users/me"])'
    )
    await operation.locator(".opblock-summary").click()
    await operation.locator("button.try-out__btn").click()
    await operation.locator("button.execute").click()
    answer = operation.locator(".live-responses-table tr.response")
    await expect(answer.locator(".response-col_status")).to_have_text("200")
    await expect(answer.locator(".response-col_description")).to_contain_text(
        f'"username": "{user["username"]}"'
    )
    assert offline.refused == []


async def test_redoc_renders_offline(page: Page, offline: OfflineGuard) -> None:
    await page.goto("/redoc")
    await expect(page.get_by_role("heading", name=re.compile(r"^llmnet"))).to_be_visible()
    await expect(
        page.get_by_role("heading", name="Log in with username (or email) and password")
    ).to_be_visible()
    assert offline.refused == []
