"""A model's owner tools in the browser: editing the model (the API's validation errors shown
at their fields), its posting schedule (prompts or a template, window, enable/disable,
delete), and a remote model's provider with "test connection"."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from shared.testing import serve_app
from tests.browser.harness import OfflineGuard, save_screenshot
from tests.browser.webapp import log_in, watch
from tests.fakes.openai_provider import create_fake_provider
from tests.models_hub.conftest import create_model, developer, hub_limits  # noqa: F401 - fixture


@pytest.fixture
async def fake_provider() -> AsyncIterator[str]:
    app = create_fake_provider(api_key="sk-secret", models=["fake-gpt", "fake-mini"])
    async with serve_app(app) as url:
        yield url


async def test_owner_edits_the_model_and_its_posting_schedule(
    page: Page, offline: OfflineGuard, client: httpx.AsyncClient, screenshot_dir: Path
) -> None:
    problems = await watch(page)
    dev = await developer(client)
    model = await create_model(client, dev, name="Plain Poet", card="Old card")
    await log_in(page, dev.username)
    await page.goto(f"/#/models/{model['id']}")

    edit = page.get_by_role("form", name="Edit the model")
    await expect(edit.get_by_label("Name")).to_have_value("Plain Poet")
    tags = edit.get_by_label("Tags")
    await tags.fill("poetry, bad tag!")
    await edit.get_by_role("button", name="Save changes").click()
    await expect(edit.get_by_role("alert")).to_contain_text("Invalid request. tags.1:")
    await expect(tags).to_have_attribute("aria-invalid", "true")
    await expect(tags).to_have_accessible_description(
        "Comma-separated, up to 10: letters, digits or '-'. String should match pattern "
        "'^[A-Za-z0-9][A-Za-z0-9-]{0,31}$'"
    )
    await tags.fill("poetry, Haiku")
    await edit.get_by_label("Name").fill("Renamed Poet")
    await edit.get_by_label("Visibility").select_option("unlisted")
    await edit.get_by_label("Card").fill("## New card\n\n<script>alert(1)</script>")
    await edit.get_by_role("button", name="Save changes").press("Enter")  # by keyboard
    await expect(edit.get_by_role("status")).to_have_text("Saved.")
    await expect(edit.get_by_role("alert")).to_be_hidden()
    await expect(tags).not_to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_role("heading", name="Renamed Poet", level=1)).to_be_visible()
    card = page.locator(".model-card")
    await expect(card.get_by_role("heading", name="New card")).to_be_visible()
    await expect(card).to_contain_text("<script>alert(1)</script>")  # as text
    await expect(page.get_by_text(" · unlisted · ")).to_contain_text("haiku, poetry")
    stored = (await client.get(f"/api/v1/models/{model['id']}", headers=dev.headers)).json()
    assert (stored["name"], stored["visibility"], stored["tags"]) == (
        "Renamed Poet",
        "unlisted",
        ["haiku", "poetry"],
    )

    schedule = page.get_by_role("form", name="Posting schedule")
    await expect(schedule.get_by_role("status")).to_have_text(
        "No posting schedule: this model posts only when asked."
    )
    await schedule.get_by_label("Every (minutes)").fill("5")
    await schedule.get_by_label("Prompts", exact=True).fill("Write a haiku\nWrite a limerick")
    await schedule.get_by_label("From hour").fill("8")
    await schedule.get_by_label("Until hour").fill("20")
    await schedule.get_by_role("button", name="Save schedule").click()
    await expect(schedule.get_by_role("alert")).to_have_text(
        "interval_minutes must be at least 10."
    )
    await schedule.get_by_label("Every (minutes)").fill("30")
    await schedule.get_by_role("button", name="Save schedule").click()
    await expect(schedule.get_by_role("status")).to_contain_text("Enabled: next post")
    path = f"/api/v1/feed/models/{model['id']}/schedule"
    saved: dict[str, Any] = (await client.get(path, headers=dev.headers)).json()
    assert saved["prompts"] == ["Write a haiku", "Write a limerick"]
    assert (saved["interval_minutes"], saved["window_start_hour"], saved["window_end_hour"]) == (
        30,
        8,
        20,
    )

    await schedule.get_by_role("button", name="Disable schedule").click()
    await expect(schedule.get_by_role("status")).to_have_text("Disabled.")
    await expect(schedule.get_by_role("button", name="Enable schedule")).to_be_visible()
    assert (await client.get(path, headers=dev.headers)).json()["enabled"] is False

    # A template instead of prompts, its variables filled.
    await schedule.get_by_label("A prompt template").check()
    await expect(schedule.get_by_label("Prompts", exact=True)).to_be_hidden()
    await schedule.get_by_label("Template", exact=True).select_option(label="plain (text)")
    await expect(schedule.get_by_label("Variables")).to_have_value("text=")  # ready to fill
    await schedule.get_by_label("Variables").fill("text=Write about autumn")
    await schedule.get_by_label("Enabled", exact=True).check()
    await schedule.get_by_role("button", name="Save schedule").click()
    await expect(schedule.get_by_role("status")).to_contain_text("Enabled: next post")
    saved = (await client.get(path, headers=dev.headers)).json()
    assert saved["prompts"] is None
    assert saved["variables"] == {"text": "Write about autumn"}
    await save_screenshot(page, screenshot_dir, "webapp-model-owner-tools")

    await schedule.get_by_role("button", name="Delete schedule").click()
    await expect(schedule.get_by_role("status")).to_have_text(
        "No posting schedule: this model posts only when asked."
    )
    assert (await client.get(path, headers=dev.headers)).status_code == 404
    # The console's only errors are the two 422s this test asked for (tag, interval).
    refused = "Failed to load resource: the server responded with a status of 422 "
    assert problems.console == [f"{refused}(Unprocessable Entity)"] * 2, problems.console
    problems.console.clear()
    problems.assert_none()
    assert offline.refused == []


async def test_remote_models_provider_and_connection_test(
    page: Page,
    client: httpx.AsyncClient,
    fake_provider: str,
    hub_limits: Callable[..., None],  # noqa: F811
    screenshot_dir: Path,
) -> None:
    problems = await watch(page)
    hub_limits(outbound_allow=["127.0.0.1"])
    dev = await developer(client)
    created = await client.post(
        "/api/v1/providers",
        json={
            "name": "Fake AI",
            "base_url": f"{fake_provider}/v1",
            "api_key": "sk-wrong",
            "models": [{"remote_model": "fake-gpt", "name": "Fake GPT"}],
        },
        headers=dev.headers,
    )
    assert created.status_code == 201, created.text
    (model_id,) = created.json()["model_ids"]
    await log_in(page, dev.username)
    await page.set_viewport_size({"width": 390, "height": 800})  # a phone
    await page.goto(f"/#/models/{model_id}")

    provider = page.get_by_role("form", name="Provider")
    await expect(provider.get_by_label("Provider name")).to_have_value("Fake AI")
    await expect(provider.get_by_label("Base URL")).to_have_value(f"{fake_provider}/v1")
    await expect(provider).to_contain_text("A key is stored (never shown).")
    await provider.get_by_role("button", name="Test connection").click()
    result = provider.get_by_role("status")
    await expect(result).to_contain_text("Connection failed (HTTP 401): ")

    await provider.get_by_label("API key").fill("sk-secret")
    await provider.get_by_role("button", name="Save provider").click()
    await expect(result).to_have_text("Provider saved.")
    await provider.get_by_role("button", name="Test connection").focus()
    await page.keyboard.press("Enter")
    await expect(result).to_contain_text("Connected: the provider lists 2 models.")
    listed = provider.get_by_role("list", name="Models the provider lists")
    await expect(listed.get_by_role("listitem")).to_have_text(["fake-gpt", "fake-mini"])
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    await save_screenshot(page, screenshot_dir, "webapp-model-provider-phone")

    await provider.get_by_label("Base URL").fill("http://10.0.0.8/v1")
    await provider.get_by_role("button", name="Save provider").click()
    await expect(provider.get_by_role("alert")).to_have_text(
        "URL refused: host 10.0.0.8 is a private address."
    )
    await expect(result).to_be_empty()
    assert problems.console == [
        "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
    ]
    problems.console.clear()
    problems.assert_none()
