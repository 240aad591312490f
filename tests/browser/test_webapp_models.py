"""Models in the web app: create one, upload the tiny llama's folder with the progress bar
moving (the upload throttled so there is something to watch), the version validated by the
model hub's real worker and shown ready without a reload; the card renders as sanitised
Markdown; a model's page leads to a chat with it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.browser.harness import OfflineGuard, save_screenshot
from tests.browser.webapp import log_in, watch
from tests.factories import user_session
from tests.models_hub.conftest import hub_settings, run_jobs  # noqa: F401 - fixtures
from tests.models_hub.tiny_models import build_tiny_llama

# Validation starts a sandboxed interpreter that imports torch and loads the model.
pytestmark = pytest.mark.timeout(300)


async def test_create_upload_validate_and_chat(
    page: Page,
    offline: OfflineGuard,
    client: httpx.AsyncClient,
    run_jobs: Callable[[], Awaitable[int]],  # noqa: F811
    tmp_path: Path,
    screenshot_dir: Path,
) -> None:
    problems = await watch(page)
    user = await user_session(client)
    folder = build_tiny_llama(tmp_path / "llama")
    await log_in(page, user.username)

    await page.get_by_role("link", name="Models").click()
    await page.goto("/#/models/new")
    await page.get_by_role("button", name="Become a model developer").click()
    await page.get_by_label("Name").fill("Tiny Poet")
    await page.get_by_label("Description").fill("Writes tiny poems")
    await page.get_by_label("Tags").fill("poetry, tiny")
    await page.get_by_label("Card").fill(
        "# Tiny Poet\n\n**Bold** claims <img src=x onerror=alert(1)>"
    )
    await page.get_by_role("button", name="Create").click()
    await expect(page.get_by_role("heading", name="Tiny Poet", level=1)).to_be_visible()
    card = page.locator(".model-card")
    await expect(card.locator("strong")).to_have_text("Bold")
    await expect(card).to_contain_text("<img src=x onerror=alert(1)>")
    assert await page.locator("main img").count() == 0

    # A slow uplink (about 150 KB/s): the bar moves through the upload.
    cdp = await page.context.new_cdp_session(page)
    await cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 150_000},
    )
    files = sorted(str(p) for p in folder.iterdir() if p.is_file())
    await page.get_by_label("Model files").set_input_files(files)
    await page.get_by_role("button", name="Upload", exact=True).click()
    bar = page.get_by_label("Upload progress")
    await expect(page.get_by_role("button", name="Cancel upload")).to_be_visible()
    await expect(page.get_by_role("status").filter(has_text=" sent · ")).to_be_visible()
    values = set()
    while await page.get_by_role("button", name="Cancel upload").is_visible():
        values.add(int(await bar.get_attribute("value") or 0))
        await page.wait_for_timeout(100)
    assert any(0 < v < 100 for v in values), values  # seen part way, not only at the end
    await cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    await expect(bar).to_have_attribute("value", "100")
    row = page.locator("table.versions tbody tr").first
    await expect(row).to_have_attribute("data-status", re.compile("uploading|validating"))
    await expect(page.get_by_role("status").filter(has_text="Validating v1")).to_be_visible()
    await save_screenshot(page, screenshot_dir, "webapp-model-validating")

    assert await run_jobs() >= 1  # the hub's real worker: sandboxed validation
    await expect(row).to_have_attribute("data-status", "ready")  # no reload: polled
    await expect(row).to_contain_text("v1 (active)")
    await expect(page.get_by_role("status").filter(has_text="v1 is ready")).to_be_visible()
    await save_screenshot(page, screenshot_dir, "webapp-model")

    await page.get_by_role("link", name="Chat with this model").click()
    await expect(page.get_by_label("Model", exact=True)).to_have_value(f"{user.username}/tiny-poet")
    problems.assert_none()
    assert offline.refused == []


async def test_models_list_searches_and_cancels_an_upload(
    page: Page, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    problems = await watch(page)
    user = await user_session(client)
    await client.patch("/api/v1/users/me", json={"is_model_developer": True}, headers=user.headers)
    for name in ("Alpha Bard", "Beta Critic"):
        created = await client.post("/api/v1/models", json={"name": name}, headers=user.headers)
        assert created.status_code == 201, created.text
    await log_in(page, user.username)
    await page.goto("/#/models")
    models = page.get_by_role("list", name="Models")
    await expect(models.get_by_role("listitem")).to_have_count(2)
    await page.get_by_label("Search models").fill("critic")
    await expect(models.get_by_role("listitem")).to_have_count(1)
    await models.get_by_role("link", name="Beta Critic").click()
    await expect(page.get_by_role("heading", name="Beta Critic")).to_be_visible()

    big = tmp_path / "model.safetensors"
    big.write_bytes(b"\0" * 2_000_000)
    cdp = await page.context.new_cdp_session(page)
    await cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 100_000},
    )
    await page.get_by_label("Model files").set_input_files(str(big))
    await page.get_by_role("button", name="Upload", exact=True).click()
    await expect(page.get_by_role("status").filter(has_text=" sent · ")).to_be_visible()
    await page.get_by_role("button", name="Cancel upload").click()
    await expect(page.get_by_role("alert")).to_contain_text("cancelled")
    await expect(page.locator("table.versions")).to_contain_text("No versions yet.")
    problems.assert_none()
