"""Evaluations in the web app: start one on a model's version from the form (the API's refusal
shown as its detail), follow it to its report drawn as charts with their numbers, download
its exports; two evaluations side by side with the differences highlighted, at phone width
and with the keyboard."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, expect

from tests.browser.charts import expect_fits, expect_plot
from tests.browser.evaluation_seeds import report, seed_evaluation
from tests.browser.harness import save_screenshot
from tests.browser.webapp import log_in, watch
from tests.conftest import Platform
from tests.factories import UserSession
from tests.inference.conftest import llama, owner, tiny_llama_dir  # noqa: F401 - fixtures
from tests.inference.evaluations.conftest import run_jobs, worker_ctx  # noqa: F401 - fixtures

PHONE = {"width": 390, "height": 844}


async def test_start_an_evaluation_and_read_its_report(
    page: Page,
    client: httpx.AsyncClient,
    owner: UserSession,  # noqa: F811
    llama: dict[str, Any],  # noqa: F811
    worker_ctx: dict[str, Any],  # noqa: F811
    screenshot_dir: Path,
) -> None:
    problems = await watch(page)
    await log_in(page, owner.username)
    await page.get_by_role("link", name="Evaluations").click()
    await expect(page.get_by_role("heading", name="Evaluations", level=1)).to_be_visible()
    await expect(page.get_by_text("No evaluations yet.")).to_be_visible()

    form = page.get_by_role("form", name="New evaluation")
    model = form.get_by_label("Model (owner/model, or owner/model@version)")
    await model.fill(f"{owner.username}/missing")
    await form.get_by_role("button", name="Start evaluation").click()
    await expect(form.get_by_role("alert")).to_contain_text(
        re.compile("[Nn]o (such )?model|not found")
    )
    assert problems.console == [
        "Failed to load resource: the server responded with a status of 404 (Not Found)"
    ]
    problems.console.clear()

    await model.fill(f"{llama['ref']}@1")
    await form.get_by_label(re.compile(r"^cultural-pairs")).uncheck()
    await form.get_by_label(re.compile(r"^consistency")).check()
    await form.get_by_label("Max tokens per answer").fill("4")
    await form.get_by_label("Repeats per consistency prompt").fill("2")
    await form.get_by_label("Seed (optional)").fill("7")
    await form.get_by_label("Held-out text for perplexity (optional)").fill(
        "The quick brown fox jumps over the lazy dog. " * 4
    )
    await form.get_by_role("button", name="Start evaluation").click()
    await expect(page).to_have_url(re.compile(r"#/evaluations/[0-9a-f-]{36}$"))
    status = page.locator(".evaluation-status")
    await expect(status).to_have_text("Status: Queued")
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Evaluation of {llama['ref']} version 1"
    )

    assert await asyncio.wait_for(run_jobs(worker_ctx), 120) == ["completed"]
    await expect(status).to_have_text("Status: Completed", timeout=30_000)
    charts = page.locator(".report-charts")
    for name in (
        "Gender balance by prompt",
        "Paired probes: valence difference",
        "Consistency by prompt",
        "Confidence score by prompt set",
        "Latency (milliseconds)",
    ):
        await expect(charts.get_by_role("img", name=name)).to_be_visible()
    # uPlot's canvases; latency always has bars to draw (the tiny llama's answers may score 0).
    for name in ("Consistency by prompt", "Latency (milliseconds)"):
        await expect(charts.get_by_role("img", name=name).locator(".uplot canvas")).to_have_count(1)
    await expect_plot(charts.get_by_role("img", name="Latency (milliseconds)"), "--series-a")
    # The same bars as numbers: one row a prompt, each its mean similarity as the report says.
    figure = charts.locator("figure[data-chart='Consistency by prompt']")
    await figure.get_by_text("Consistency by prompt: the numbers").click()
    rows = figure.get_by_role("table").locator("tbody tr")
    await expect(rows).to_have_count(4)
    evaluation = await client.get(
        f"/api/v1/evaluations/{page.url.rsplit('/', 1)[-1]}", headers=owner.headers
    )
    for i, prompt in enumerate(evaluation.json()["report"]["consistency"]["per_prompt"]):
        await expect(rows.nth(i).locator("th")).to_have_text(
            f"{prompt['set']}/{prompt['prompt_id']}"
        )
        cell = await rows.nth(i).locator("td").inner_text()
        assert abs(float(cell) - prompt["mean_similarity"]) < 0.0006, (cell, prompt)
    probes = charts.get_by_role("img", name="Paired probes: valence difference")
    await expect(probes).to_have_accessible_description(re.compile(r"^age/"))
    facts = page.locator(".report-facts")
    await expect(facts).to_contain_text("Perplexity")
    assert "not measured" not in await facts.inner_text()
    latency = page.locator("figure[data-chart='Latency (milliseconds)']")
    await latency.get_by_text("Latency (milliseconds): the numbers").click()
    await expect(latency.get_by_role("row", name=re.compile("^p95"))).to_be_visible()
    await save_screenshot(page, screenshot_dir, "evaluation-report")

    async with page.expect_download() as metrics_download:
        await page.get_by_role("button", name="Download CSV (metrics)").click()
    rows = list(
        csv.DictReader(io.StringIO(Path(await (await metrics_download.value).path()).read_text()))
    )
    assert ("consistency", "mean_similarity") in {(r["section"], r["metric"]) for r in rows}
    async with page.expect_download() as json_download:
        await page.get_by_role("button", name="Download JSON").click()
    exported = json.loads(Path(await (await json_download.value).path()).read_text())
    assert len(exported["report"]["responses"]) == 8 + 6 + 6
    await expect(page.get_by_role("status").filter(has_text="Downloaded JSON.")).to_be_visible()

    await page.locator("#main").get_by_role("link", name=re.compile("Evaluations$")).click()
    row = page.get_by_role("table", name="Your evaluations").locator("tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("Completed")
    problems.assert_none()


async def test_two_evaluations_side_by_side_with_the_keyboard_at_phone_width(
    page: Page,
    platform: Platform,
    owner: UserSession,  # noqa: F811
    llama: dict[str, Any],  # noqa: F811
    screenshot_dir: Path,
) -> None:
    problems = await watch(page)
    first = await seed_evaluation(
        platform,
        owner.id,
        llama,
        1,
        report(perplexity=20.0, similarity=0.5, balance=0.1, latency=100.0),
    )
    second = await seed_evaluation(
        platform,
        owner.id,
        llama,
        2,
        report(perplexity=10.0, similarity=0.52, balance=0.6, latency=101.0),
    )
    await page.set_viewport_size(PHONE)
    await log_in(page, owner.username)
    await page.goto("/#/evaluations")
    compare = page.get_by_role("form", name="Compare two evaluations")
    await compare.get_by_label("First (A, the baseline)").select_option(first)
    await compare.get_by_label("Second (B)").select_option(second)
    await compare.get_by_label("Second (B)").focus()
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(f"#/evaluations/{first}/vs/{second}$"))
    await expect(page.get_by_role("heading", name="Two evaluations side by side")).to_be_visible()

    table = page.locator(".comparison-table")
    perplexity = table.locator("tr[data-metric='perplexity']")
    await expect(perplexity).to_have_class(re.compile("highlight"))
    await expect(perplexity).to_contain_text("notable")
    await expect(perplexity).to_contain_text("-50.0%")
    await expect(perplexity.locator("td").last).to_have_text("B")  # lower perplexity is better
    similarity = table.locator("tr[data-metric='consistency.mean_similarity']")
    await expect(similarity).not_to_have_class(re.compile("highlight"))
    await expect(table.locator("tr[data-metric='gender.verdict']")).to_have_class(
        re.compile("highlight")
    )
    for side in (f"A: {llama['ref']} version 1", f"B: {llama['ref']} version 2"):
        section = page.get_by_role("region", name=side)
        gender = section.get_by_role("img", name="Gender balance by prompt")
        await expect(gender).to_be_visible()
        await expect_fits(gender)
        await expect_plot(gender, "--series-a")
    wide = await page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not wide
    await save_screenshot(page, screenshot_dir, "evaluations-compare-phone")

    async with page.expect_download() as download:
        await page.get_by_role("button", name="Download comparison CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(await (await download.value).path()).read_text())))
    by_metric = {r["metric"]: r for r in rows}
    assert by_metric["perplexity"]["highlight"] == "true"
    assert float(by_metric["perplexity"]["difference"]) == -10.0
    problems.assert_none()
