"""A model's page in the browser: stats over time as charts (with their numbers as tables,
and described for screen readers), at desktop and phone width."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from playwright.async_api import Page, expect

from services.inference.models import UsageRecord
from services.models_hub.models import ModelVersion
from shared.db import session_scope
from tests.browser.charts import expect_fits, expect_plot
from tests.browser.harness import OfflineGuard, save_screenshot
from tests.browser.webapp import log_in, watch
from tests.conftest import Platform
from tests.models_hub.conftest import create_model, developer


async def _seed_usage(platform: Platform, model: dict, user_id: str) -> datetime:
    """Four requests two days ago, one today; returns now."""
    now = datetime.now(UTC)
    async with session_scope(platform.sessionmaker) as session:
        for at, latency, tokens in [
            *((now - timedelta(days=2), float(ms), 5) for ms in (100, 200, 300, 400)),
            (now, 50.0, 7),
        ]:
            session.add(
                UsageRecord(
                    user_id=uuid.UUID(user_id),
                    model_id=uuid.UUID(model["id"]),
                    model_ref=model["ref"],
                    source="local",
                    endpoint="chat.completions",
                    prompt_tokens=10,
                    completion_tokens=tokens,
                    latency_ms=latency,
                    status="completed",
                    created_at=at,
                )
            )
    return now


async def test_stats_over_time_as_charts(
    page: Page,
    offline: OfflineGuard,
    client: httpx.AsyncClient,
    platform: Platform,
    screenshot_dir: Path,
) -> None:
    problems = await watch(page)
    dev = await developer(client)
    model = await create_model(client, dev, name="Chart Poet")
    now = await _seed_usage(platform, model, dev.id)
    busy_day = (now - timedelta(days=2)).date().isoformat()

    await log_in(page, dev.username)
    await page.goto(f"/#/models/{model['id']}")
    stats = page.get_by_role("region", name="Stats")
    for name in ("Requests (per day)", "Tokens (per day)", "Latency (milliseconds)"):
        await expect(stats.get_by_role("img", name=name)).to_be_visible()
    # uPlot's canvases, in the app's colours: bars, and the latency lines.
    requests = stats.get_by_role("img", name="Requests (per day)")
    await expect_plot(requests, "--series-a")
    await expect_plot(stats.get_by_role("img", name="Tokens (per day)"), "--series-a", "--series-b")
    await expect_plot(
        stats.get_by_role("img", name="Latency (milliseconds)"), "--series-a", "--series-c"
    )
    # The numbers for screen readers, and as a table.
    await expect(requests).to_have_accessible_description(
        "30 days from "
        f"{(now - timedelta(days=29)).date().isoformat()} to {now.date().isoformat()}, "
        "2 with use. Requests: 5 in all."
    )
    latency = stats.locator("figure[data-chart=Latency]")
    await latency.get_by_text("Latency: the numbers").click()
    row = latency.get_by_role("row", name=busy_day)
    await expect(row).to_have_text(f"{busy_day}250385")  # p50, p95 of 100..400 ms
    tokens = stats.locator("figure[data-chart=Tokens]")
    await tokens.get_by_text("Tokens: the numbers").press("Enter")  # by keyboard
    await expect(tokens.get_by_role("row", name=busy_day)).to_have_text(f"{busy_day}4020")
    requests_figure = stats.locator("figure[data-chart=Requests]")
    await requests_figure.get_by_text("Requests: the numbers").click()
    request_rows = requests_figure.get_by_role("table").locator("tbody tr")
    await expect(request_rows).to_have_count(30)
    await expect(requests_figure.get_by_role("row", name=busy_day)).to_have_text(f"{busy_day}4")
    await expect(request_rows.last).to_have_text(f"{now.date().isoformat()}1")
    await save_screenshot(page, screenshot_dir, "webapp-model-stats")

    await stats.get_by_label("Stats period").select_option("7")
    await expect(requests).to_have_accessible_description(re.compile(r"^7 days from "))
    requests_figure = stats.locator("figure[data-chart=Requests]")
    await requests_figure.get_by_text("Requests: the numbers").click()
    await expect(requests_figure.get_by_role("table").locator("tbody tr")).to_have_count(7)
    await expect_plot(requests, "--series-a")

    # A phone: the charts fit the width, nothing scrolls sideways.
    await page.set_viewport_size({"width": 390, "height": 800})
    await expect(requests).to_be_visible()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    # The plot was resized to its box, not clipped from a desktop's width.
    await expect_fits(requests)
    await expect_plot(requests, "--series-a")
    await save_screenshot(page, screenshot_dir, "webapp-model-stats-phone")
    problems.assert_none()
    assert offline.refused == []


async def test_unused_model_says_so(page: Page, client: httpx.AsyncClient) -> None:
    problems = await watch(page)
    dev = await developer(client)
    model = await create_model(client, dev, name="Quiet Poet")
    await log_in(page, dev.username)
    await page.goto(f"/#/models/{model['id']}")
    await expect(
        page.get_by_role("status").filter(has_text="No use in the last 30 days.")
    ).to_be_visible()
    await expect(
        page.get_by_role("img", name="Latency (milliseconds)")
    ).to_have_accessible_description(
        "30 days from "
        f"{(datetime.now(UTC) - timedelta(days=29)).date().isoformat()} to "
        f"{datetime.now(UTC).date().isoformat()}, 0 with use. p50: no data; p95: no data."
    )
    problems.assert_none()


async def test_versions_lineage_tree(
    page: Page, client: httpx.AsyncClient, platform: Platform, screenshot_dir: Path
) -> None:
    problems = await watch(page)
    dev = await developer(client)
    model = await create_model(client, dev, name="Family Poet")
    # Three uploads' worth of versions: v1, v2 fine-tuned from v1, v3 from v2, v4 from v1.
    ids = {n: uuid.uuid4() for n in range(1, 5)}
    parents = {1: None, 2: 1, 3: 2, 4: 1}
    async with session_scope(platform.sessionmaker) as session:
        for number, parent in parents.items():
            session.add(
                ModelVersion(
                    id=ids[number],
                    model_id=uuid.UUID(model["id"]),
                    owner_id=uuid.UUID(dev.id),
                    number=number,
                    status="ready" if number != 4 else "failed",
                    format="safetensors",
                    parent_version_id=ids[parent] if parent else None,
                    lineage={
                        "fine_tune_id": str(uuid.uuid4()),
                        "base_version_number": parent,
                        "method": "lora",
                        "final_train_loss": 1.23456,
                    }
                    if parent
                    else {},
                    created_at=datetime.now(UTC) + timedelta(seconds=number),
                )
            )
            await session.flush()

    await log_in(page, dev.username)
    await page.goto(f"/#/models/{model['id']}")
    tree = page.get_by_role("list", name="Version lineage")
    await expect(tree.locator("> li")).to_have_count(1)
    v1 = tree.locator("> li[data-version='1']")
    await expect(v1.locator("> .lineage-node")).to_contain_text("uploaded")
    children = v1.locator("> ul > li")
    await expect(children).to_have_count(2)
    await expect(children.nth(0)).to_have_attribute("data-version", "2")
    await expect(children.nth(1)).to_have_attribute("data-version", "4")
    await expect(children.nth(1).locator("> .lineage-node")).to_contain_text("failed")
    v3 = children.nth(0).locator("> ul > li[data-version='3'] > .lineage-node")
    await expect(v3).to_have_text("v3readyfine-tuned (lora), from v2, train loss 1.235")
    await tree.scroll_into_view_if_needed()
    await save_screenshot(page, screenshot_dir, "webapp-model-lineage", full_page=False)
    problems.assert_none()
