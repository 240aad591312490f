"""The JSON and table viewer: an evaluation's 120 answers as a sortable table shown 50 rows a
page, its raw report as a tree opened and closed from the keyboard (long arrays a hundred
items at a time), and a chat answer's details as a tree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from tests.browser.evaluation_seeds import report, seed_evaluation
from tests.browser.harness import save_screenshot
from tests.browser.webapp import log_in, watch
from tests.conftest import Platform
from tests.factories import UserSession
from tests.inference.conftest import llama, owner, tiny_llama_dir  # noqa: F401 - fixtures


async def test_answers_table_pages_and_sorts_and_the_report_tree_opens_by_keyboard(
    page: Page,
    platform: Platform,
    owner: UserSession,  # noqa: F811
    llama: dict[str, Any],  # noqa: F811
    screenshot_dir: Path,
) -> None:
    problems = await watch(page)
    body = report(perplexity=12.0, similarity=0.4, balance=0.0, latency=50.0, answers=120)
    evaluation = await seed_evaluation(platform, owner.id, llama, 1, body)
    await log_in(page, owner.username)
    await page.goto(f"/#/evaluations/{evaluation}")
    await expect(page.locator(".evaluation-status")).to_have_text("Status: Completed")

    await page.get_by_text("Every answer (120)").click()
    answers = page.locator(".report-answers")
    table = answers.get_by_role("table", name="Answers")
    rows = table.locator("tbody tr")
    await expect(rows).to_have_count(50)
    pager = answers.get_by_role("group", name="Answers: pages")
    await expect(pager.get_by_role("status")).to_have_text("Rows 1 to 50 of 120, page 1 of 3")
    await expect(pager.get_by_role("button", name="Previous page")).to_be_disabled()
    await pager.get_by_role("button", name="Next page").click()
    await pager.get_by_role("button", name="Next page").click()
    await expect(pager.get_by_role("status")).to_have_text("Rows 101 to 120 of 120, page 3 of 3")
    await expect(rows).to_have_count(20)
    await expect(pager.get_by_role("button", name="Next page")).to_be_disabled()

    # Sort by latency from the keyboard: ascending, then descending; back to page 1.
    latency_header = table.get_by_role("columnheader", name="latency_ms")
    sort = latency_header.get_by_role("button", name="latency_ms")
    await sort.focus()
    await page.keyboard.press("Enter")
    await expect(latency_header).to_have_attribute("aria-sort", "ascending")
    await expect(pager.get_by_role("status")).to_have_text("Rows 1 to 50 of 120, page 1 of 3")
    column = await table.locator("thead th").all_inner_texts()
    at = column.index("latency_ms")
    await expect(rows.nth(0).locator("td").nth(at)).to_have_text("10")
    await page.keyboard.press("Enter")
    await expect(latency_header).to_have_attribute("aria-sort", "descending")
    await expect(rows.nth(0).locator("td").nth(at)).to_have_text("129")

    await page.get_by_text("Raw report (JSON)").click()
    tree = page.get_by_role("list", name="Report")
    root = tree.locator(".json-toggle").first
    await expect(root).to_have_attribute("aria-expanded", "true")
    responses = tree.get_by_role("button", name=re.compile(r"^responses: \[120 items\]"))
    await expect(responses).to_have_attribute("aria-expanded", "false")
    await responses.focus()
    await page.keyboard.press("Enter")
    await expect(responses).to_have_attribute("aria-expanded", "true")
    items = tree.locator(f"#{await responses.get_attribute('aria-controls')} > li.json-branch")
    await expect(items).to_have_count(100)
    more = tree.get_by_role("button", name="Show 20 more of 20")
    await more.focus()
    await page.keyboard.press("Enter")
    await expect(items).to_have_count(120)
    await responses.focus()
    await page.keyboard.press("Space")
    await expect(responses).to_have_attribute("aria-expanded", "false")
    perplexity = tree.get_by_role("button", name=re.compile(r"^perplexity: \{4 keys\}"))
    await perplexity.click()
    await expect(tree.locator(".json-key", has_text="mean_nll")).to_be_visible()
    await expect(tree.locator(".json-number", has_text=re.compile("^12$"))).to_be_visible()
    await save_screenshot(page, screenshot_dir, "evaluation-viewer")
    problems.assert_none()


async def test_a_chat_answers_details_open_as_a_tree(
    page: Page,
    owner: UserSession,  # noqa: F811
    llama: dict[str, Any],  # noqa: F811
) -> None:
    problems = await watch(page)
    await log_in(page, owner.username)
    await page.goto("/#/chat")
    await page.get_by_label("Model", exact=True).select_option(llama["ref"])
    await page.locator("summary", has_text="Parameters").click()
    await page.get_by_label("Max tokens").fill("3")
    await page.get_by_label("Message", exact=True).fill("Hello there")
    await page.get_by_role("button", name="Start").click()
    done = page.locator('.message.assistant[data-status="complete"]')
    await done.get_by_text("All details (JSON)").click()
    tree = done.get_by_role("list", name="Message details")
    await expect(tree.locator(".json-key", has_text="completion_tokens")).to_be_visible()
    await expect(tree.locator("li.json-leaf", has_text="model_version_id")).to_contain_text(
        llama["version_id"]
    )
    await done.get_by_role("button", name="Collapse all").click()
    await expect(tree.locator(".json-toggle").first).to_have_attribute("aria-expanded", "false")
    problems.assert_none()
