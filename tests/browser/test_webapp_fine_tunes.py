"""Fine-tunes in the web app: a dataset's bad lines shown by line number, a real fine-tune
(the fine-tune worker, the tiny llama) drawn live as a loss chart, and cancel from the page."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, expect

from tests.browser.charts import expect_fits, expect_plot
from tests.browser.harness import save_screenshot
from tests.browser.webapp import log_in, watch
from tests.factories import UserSession
from tests.models_hub.fine_tunes.conftest import (  # noqa: F401 - fixtures
    MEMORISE,
    base,
    base_model_dir,
    chat_line,
    jsonl,
    owner,
    run_fine_tunes,
    start_fine_tune,
)

# Counts of the loss table's rows each time the chart is updated (no reload between them),
# and the plot's canvas, which must stay the same one (uPlot's setData, not a new chart).
_RECORD_REDRAWS = """
() => {
  window.lossRows = [];
  window.lossCanvas = document.querySelector(".loss-figure .uplot canvas");
  const body = document.querySelector(".loss-figure .chart-table tbody");
  new MutationObserver(() => {
    window.lossRows.push(body.querySelectorAll("tr").length);
  }).observe(body, { childList: true });
}
"""


async def test_bad_lines_are_named_then_a_fine_tune_trains_live(
    page: Page,
    client: httpx.AsyncClient,
    owner: UserSession,  # noqa: F811
    base: dict[str, Any],  # noqa: F811
    run_fine_tunes: Callable[[], Awaitable[int]],  # noqa: F811
    screenshot_dir: Path,
) -> None:
    problems = await watch(page)
    await log_in(page, owner.username)
    await page.get_by_role("link", name="Fine-tunes").click()
    await expect(page.get_by_role("heading", name="Fine-tunes", exact=True)).to_be_visible()
    await expect(page.get_by_text("No fine-tunes yet.")).to_be_visible()

    form = page.get_by_role("form", name="New fine-tune")
    await form.get_by_label("Base model").select_option(base["id"])
    bad = jsonl([chat_line(), "not json", {"messages": []}, chat_line()])
    training = form.get_by_label("Training data (JSONL)")
    await training.set_input_files(
        {"name": "train.jsonl", "mimeType": "application/jsonl", "buffer": bad}
    )
    await form.get_by_label("Method").select_option("full")
    for label, value in [
        ("Epochs", "12"),
        ("Learning rate", "0.01"),
        ("Batch size", "4"),
        ("Max sequence length (tokens)", "64"),
    ]:
        await form.get_by_label(label).fill(value)
    await form.get_by_role("button", name="Start fine-tune").click()
    alert = form.get_by_role("alert")
    await expect(alert).to_contain_text("The training file has problems")
    lines = alert.get_by_role("list", name="Problems found").get_by_role("listitem")
    await expect(lines).to_have_count(2)
    await expect(lines.nth(0)).to_contain_text("Training file, line 2:")
    await expect(lines.nth(1)).to_contain_text("Training file, line 3:")
    await expect(training).to_have_attribute("aria-invalid", "true")
    await save_screenshot(page, screenshot_dir, "fine-tunes-bad-lines")
    assert problems.console == [
        "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
    ]
    problems.console.clear()

    await training.set_input_files(
        {"name": "train.jsonl", "mimeType": "application/jsonl", "buffer": MEMORISE}
    )
    await form.get_by_label("Validation data (JSONL, optional)").set_input_files(
        {"name": "valid.jsonl", "mimeType": "application/jsonl", "buffer": MEMORISE}
    )
    await form.get_by_role("button", name="Start fine-tune").click()
    await expect(page).to_have_url(re.compile(r"#/fine-tunes/[0-9a-f-]{36}$"))
    status = page.locator(".fine-tune-status")
    await expect(status).to_have_text(re.compile(r"Status: Queued"))
    await page.evaluate(_RECORD_REDRAWS)

    worker = asyncio.create_task(run_fine_tunes())
    await expect(status).to_have_text("Status: Succeeded", timeout=120_000)
    assert await asyncio.wait_for(worker, 60) == 1
    figure = page.locator(".loss-figure")
    chart = figure.get_by_role("img", name="Loss by step")
    await expect(chart).to_have_accessible_description(re.compile("at step 12 of 12"))
    await expect(chart).to_have_accessible_description(re.compile("Validation loss"))
    # uPlot drew both lines (in the app's colours) on the canvas it started with.
    await expect_plot(chart, "--series-a", "--series-c")
    assert await page.evaluate(
        "window.lossCanvas === document.querySelector('.loss-figure .uplot canvas')"
    )
    await figure.get_by_text("Loss values (12 steps)").click()  # the numbers, as a table
    rows = figure.get_by_role("table").locator("tbody tr")
    await expect(rows).to_have_count(12)
    first = float(await rows.nth(0).locator("td").nth(1).inner_text())
    last = float(await rows.nth(11).locator("td").nth(1).inner_text())
    assert last < first
    assert float(await rows.nth(11).locator("td").nth(2).inner_text()) >= 0  # validation loss
    # The chart grew as the steps were reported, not only once at the end.
    redraws: list[int] = await page.evaluate("window.lossRows")
    assert len({n for n in redraws if 0 < n < 12}) >= 2, redraws
    await expect(page.get_by_role("button", name="Cancel fine-tune")).to_be_disabled()
    await expect(page.get_by_role("link", name=re.compile("Open the model"))).to_be_visible()
    await save_screenshot(page, screenshot_dir, "fine-tune")

    await page.locator("#main").get_by_role("link", name=re.compile("Fine-tunes$")).click()
    row = page.get_by_role("table", name="Your fine-tunes").locator("tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("Succeeded")
    await expect(row).to_contain_text("100%")
    problems.assert_none()


async def test_cancel_a_queued_fine_tune_with_the_keyboard_at_phone_width(
    page: Page,
    client: httpx.AsyncClient,
    owner: UserSession,  # noqa: F811
    base: dict[str, Any],  # noqa: F811
    screenshot_dir: Path,
) -> None:
    problems = await watch(page)
    created = await start_fine_tune(client, owner, base["id"])
    assert created.status_code == 202, created.text
    await page.set_viewport_size({"width": 390, "height": 844})
    await log_in(page, owner.username)
    await page.goto("/#/fine-tunes")
    row = page.get_by_role("table", name="Your fine-tunes").locator("tbody tr")
    await expect(row).to_contain_text("Queued")
    await row.get_by_role("link", name=base["ref"]).click()
    await expect(page.locator(".fine-tune-status")).to_contain_text("Status: Queued")
    wide = await page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not wide
    chart = page.get_by_role("img", name="Loss by step")
    await expect(chart).to_have_accessible_description("No steps reported yet.")
    await expect_fits(chart)
    await save_screenshot(page, screenshot_dir, "fine-tune-phone")

    cancel = page.get_by_role("button", name="Cancel fine-tune")
    await cancel.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator(".fine-tune-status")).to_contain_text("Status: Cancelled")
    await expect(cancel).to_be_disabled()
    job = await client.get(f"/api/v1/fine-tunes/{created.json()['id']}", headers=owner.headers)
    assert job.json()["status"] == "cancelled"
    assert json.loads(job.text)["result_version_id"] is None
    problems.assert_none()
