"""The prompt lab in the web app: a gendered prompt analysed (its terms marked, the swap run on
the tiny llama), a rule-based rewrite taken into an A/B test, the run followed to its results
(charts, the metrics of both prompts side by side, the answers) and exported; a refused run
shows the API's detail."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, expect

from tests.browser.charts import expect_plot
from tests.browser.harness import save_screenshot
from tests.browser.webapp import log_in, watch
from tests.factories import UserSession
from tests.inference.conftest import llama, owner, tiny_llama_dir  # noqa: F401 - fixtures
from tests.inference.evaluations.conftest import run_jobs, worker_ctx  # noqa: F401 - fixtures

GENDERED = "He is a nurse. Describe his typical day at the hospital."
NEUTRAL = "They are a nurse. Describe their typical day at the hospital."


async def test_analyse_rewrite_and_ab_test_a_prompt(
    page: Page,
    client: httpx.AsyncClient,
    owner: UserSession,  # noqa: F811
    llama: dict[str, Any],  # noqa: F811
    worker_ctx: dict[str, Any],  # noqa: F811
    screenshot_dir: Path,
) -> None:
    problems = await watch(page)
    await log_in(page, owner.username)
    await page.get_by_role("link", name="Prompt lab").click()
    await expect(page.get_by_role("heading", name="Prompt lab", level=1)).to_be_visible()
    await expect(page.get_by_text("No A/B runs yet.")).to_be_visible()

    analyse = page.get_by_role("form", name="Analyse a prompt")
    await analyse.get_by_label("Prompt", exact=True).fill(GENDERED)
    await analyse.get_by_label(re.compile("^Model for the swap")).fill(llama["ref"])
    await analyse.get_by_label(re.compile("^Model judgement")).uncheck()
    await analyse.get_by_role("button", name="Analyse").click()
    await expect(analyse.get_by_role("heading", name="Potential bias found")).to_be_visible()
    lexicon = analyse.get_by_role("region", name="Lexicon")
    await expect(lexicon.locator("mark").first).to_have_text("He")
    await expect(lexicon).to_contain_text("“He” — gender (male), characters 0 to 2")
    swap = analyse.get_by_role("region", name="Counterfactual swap")
    await expect(swap).to_contain_text("Swapped prompt: She is a nurse. Describe her")
    await expect(swap.get_by_role("heading", name="Swapped answer")).to_be_visible()
    await expect(analyse.get_by_role("region", name="Model judgement")).to_have_count(0)
    suggestion = analyse.locator(".suggestion").first
    await expect(suggestion).to_contain_text(NEUTRAL)
    await suggestion.get_by_role("button", name="Use in the A/B test").click()

    ab = page.get_by_role("form", name="A/B test two prompts")
    await expect(ab.get_by_label("Prompt A (original)")).to_have_value(GENDERED)
    await expect(ab.get_by_label("Prompt B (rewrite)")).to_be_focused()
    await expect(ab.get_by_label("Prompt B (rewrite)")).to_have_value(NEUTRAL)
    models = ab.get_by_label("Models (one per line or comma-separated)")
    await models.fill(f"{llama['ref']}, nobody/nothing")
    await ab.get_by_label("Samples per model and prompt").fill("2")
    await ab.get_by_label("Max tokens").fill("4")
    await ab.get_by_role("button", name="Start A/B test").click()
    await expect(ab.get_by_role("alert")).to_contain_text("No such model")
    assert problems.console == [
        "Failed to load resource: the server responded with a status of 404 (Not Found)"
    ]
    problems.console.clear()

    await models.fill(llama["ref"])
    await ab.get_by_role("button", name="Start A/B test").click()
    await expect(page).to_have_url(re.compile(r"#/prompt-lab/[0-9a-f-]{36}$"))
    status = page.locator(".lab-status")
    await expect(status).to_have_text(re.compile("Status: (Queued|Running)"))
    await expect(page.get_by_role("region", name="Prompt A (original)")).to_contain_text(GENDERED)

    assert await asyncio.wait_for(run_jobs(worker_ctx), 120) == ["completed"]
    await expect(status).to_have_text("Status: Completed")
    results = page.get_by_role("region", name=f"Results on {llama['ref']}")
    bias = results.get_by_role("img", name=f"{llama['ref']}: bias measures")
    await expect(bias).to_be_visible()
    await expect(bias).to_have_accessible_description(re.compile("^Gendered terms: A: original "))
    # The chart is uPlot's canvas; its numbers, in the table beside it, are the API's.
    await expect(bias.locator(".uplot canvas")).to_have_count(1)
    run = await client.get(
        f"/api/v1/prompt-lab/ab-tests/{page.url.rsplit('/', 1)[-1]}", headers=owner.headers
    )
    summary = run.json()["summary"][llama["ref"]]
    figure = results.locator(f"figure[data-chart='{llama['ref']}: bias measures']")
    await figure.get_by_text("bias measures: the numbers").click()
    rows = figure.get_by_role("table").locator("tbody tr")
    await expect(rows).to_have_count(5)
    for i, key in enumerate(
        ["gendered_terms", "male_terms", "female_terms", "demographic_terms", "valence"]
    ):
        cells = rows.nth(i).locator("td")
        for column, arm in enumerate(["original", "rewrite"]):
            value = summary[arm][key]
            text = await cells.nth(column).inner_text()
            assert (text == "—") if value is None else abs(float(text) - value) < 0.0006, (key, arm)
    # Each arm is drawn in its colour wherever it has a bar to draw.
    for arm, colour in [("original", "--series-a"), ("rewrite", "--series-c")]:
        if any(summary[arm][key] for key in ["gendered_terms", "male_terms", "female_terms"]):
            await expect_plot(bias, colour)
    table = results.locator(".ab-table")
    await expect(table.locator("tbody tr")).to_have_count(11)
    await expect(table.locator("tr[data-metric='consistency'] th")).to_have_text("Consistency")
    for arm in ("A: original", "B: rewrite"):
        answers = results.get_by_role("region", name=f"{llama['ref']}, {arm} answers")
        await expect(answers.locator("li")).to_have_count(2)
    await save_screenshot(page, screenshot_dir, "prompt-lab-run")

    async with page.expect_download() as download:
        await page.get_by_role("button", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(await (await download.value).path()).read_text())))
    assert sorted(r["arm"] for r in rows) == ["original", "original", "rewrite", "rewrite"]

    await page.locator("#main").get_by_role("link", name=re.compile("Prompt lab$")).click()
    runs = page.get_by_role("table", name="Your A/B runs").locator("tbody tr")
    await expect(runs).to_have_count(1)
    await expect(runs).to_contain_text("Completed")
    problems.assert_none()
