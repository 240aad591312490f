"""The chat page's extras in a real browser, against a model at an external provider (the fake
OpenAI-compatible one answers the last user message reversed): each answer's details, thumbs
and comments, prompt templates with a live preview, attachments by picker and by drag and drop,
and the export downloads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from tests.browser.harness import OfflineGuard, save_screenshot
from tests.browser.test_webapp_chat import answer, start_chat
from tests.browser.webapp import log_in, watch
from tests.inference.openai.test_remote import (  # noqa: F401 - fixtures
    allow_loopback,
    provider_app,
    remote_model,
)
from tests.models_hub.conftest import hub_limits  # noqa: F401 - fixture


async def open_conversation(page: Page, client: Any, model: Any, title: str) -> str:
    """A conversation made through the API, opened in the page; its API path."""
    dev, ref = model
    created = await client.post(
        "/api/v1/conversations", headers=dev.headers, json={"model": ref, "title": title}
    )
    assert created.status_code == 201, created.text
    await log_in(page, dev.username)
    await page.goto(f"/#/chat/{created.json()['id']}")
    await expect(page.get_by_role("heading", name=title, level=1)).to_be_visible()
    return f"/api/v1/conversations/{created.json()['id']}"


async def test_an_answer_shows_its_details_and_takes_feedback(
    page: Page,
    offline: OfflineGuard,
    client,
    provider_app,  # noqa: F811
    remote_model,  # noqa: F811
    screenshot_dir: Path,
) -> None:
    problems = await watch(page)
    provider_app.state.chunk_delay_seconds = 0.01
    await start_chat(page, remote_model, "red green blue")
    done = answer(page, "complete")
    await expect(done.locator(".content")).to_have_text("eulb neerg der")
    details = done.get_by_label("Answer details")
    await expect(details.locator(".meta-prompt")).to_have_text(re.compile(r"Prompt\d+ tokens"))
    await expect(details.locator(".meta-completion")).to_have_text("Completion3 tokens")
    await expect(details.locator(".meta-latency")).to_contain_text(" s")
    await expect(details.locator(".meta-speed")).to_contain_text("tokens/s")
    await expect(details.locator(".meta-model")).to_have_text(f"Model{remote_model[1]}")
    await expect(details.locator(".meta-version")).to_have_text("Versionexternal model")

    # Thumbs up from the keyboard, then a comment; both survive a reload (the read has them).
    good = done.get_by_role("button", name="Good answer")
    await good.focus()
    await page.keyboard.press("Enter")
    await expect(good).to_have_attribute("aria-pressed", "true")
    await expect(page.get_by_role("status")).to_have_text("Rated: good answer.")
    await done.get_by_role("button", name="Add a comment").click()
    await done.get_by_label("Comment on this answer (optional)").fill("Backwards, as asked")
    await done.get_by_role("button", name="Save comment").click()
    await expect(done.locator(".feedback-comment")).to_have_text(
        "Your comment: Backwards, as asked"
    )
    await page.reload()
    done = answer(page, "complete")
    await expect(done.get_by_role("button", name="Good answer")).to_have_attribute(
        "aria-pressed", "true"
    )
    await expect(done.locator(".feedback-comment")).to_have_text(
        "Your comment: Backwards, as asked"
    )
    await save_screenshot(page, screenshot_dir, "webapp-chat-details-feedback")
    # Down instead keeps the comment; pressing it again takes the rating back.
    bad = done.get_by_role("button", name="Bad answer")
    await bad.click()
    await expect(bad).to_have_attribute("aria-pressed", "true")
    await expect(done.get_by_role("button", name="Good answer")).to_have_attribute(
        "aria-pressed", "false"
    )
    conversation_id = page.url.rsplit("/", 1)[-1]
    dev = remote_model[0]
    read = await client.get(f"/api/v1/conversations/{conversation_id}", headers=dev.headers)
    rated = [m["feedback"] for m in read.json()["messages"] if m["role"] == "assistant"]
    assert rated == [{"rating": "down", "comment": "Backwards, as asked"}]
    await bad.click()
    await expect(bad).to_have_attribute("aria-pressed", "false")
    await expect(done.locator(".feedback-comment")).to_have_count(0)
    await expect(page.get_by_role("status")).to_have_text("Rating removed.")
    problems.assert_none()
    assert offline.refused == []


async def test_prompt_templates_fill_preview_send_edit_delete(
    page: Page,
    client,
    provider_app,  # noqa: F811
    remote_model,  # noqa: F811
) -> None:
    problems = await watch(page)
    provider_app.state.chunk_delay_seconds = 0.01
    await open_conversation(page, client, remote_model, "Templates")
    await page.locator("summary", has_text="Prompt templates").click()
    panel = page.locator("details.templates")
    # Built-in templates are there to pick; a new one of ours is written on the page.
    await expect(panel.get_by_label("Template", exact=True)).to_contain_text("few-shot")
    await panel.get_by_role("button", name="New template").click()
    await panel.get_by_label("Name").fill("Greeting")
    await panel.get_by_label("Template text").fill("Say {{ word }} to {{ name }}")
    await panel.get_by_role("button", name="Create template").click()
    await expect(panel.get_by_label("Template", exact=True)).to_have_value(
        re.compile(r"[0-9a-f-]{36}")
    )
    word, name = panel.get_by_label("word", exact=True), panel.get_by_label("name", exact=True)
    await expect(word).to_be_visible()
    # The preview follows the form; a field left empty is named.
    await word.fill("hello")
    await expect(panel.locator(".template-problem")).to_have_text("Fill in: name.")
    await name.fill("Ada")
    await expect(panel.get_by_label("Preview of the prompt")).to_have_text("Say hello to Ada")
    await expect(panel.locator(".template-problem")).to_have_text("")
    await panel.get_by_role("button", name="Send from template").click()
    await expect(page.locator(".message.user .content")).to_have_text("Say hello to Ada")
    await expect(answer(page, "complete").locator(".content")).to_have_text("adA ot olleh yaS")
    # Edit: the fields follow the new variables.
    await panel.get_by_role("button", name="Edit template").click()
    await panel.get_by_label("Template text").fill("Hi {{ who }}")
    await panel.get_by_role("button", name="Save template").click()
    await expect(panel.get_by_label("who", exact=True)).to_be_visible()
    await expect(panel.get_by_label("word", exact=True)).to_have_count(0)
    await panel.get_by_label("who", exact=True).fill("Bo")
    await expect(panel.get_by_label("Preview of the prompt")).to_have_text("Hi Bo")
    # A bad template: the API's detail, and nothing saved.
    await panel.get_by_role("button", name="Edit template").click()
    await panel.get_by_label("Template text").fill("Hi {{ who.__class__ }}")
    await panel.get_by_role("button", name="Save template").click()
    await expect(panel.locator(".template-editor .error")).to_contain_text("not allowed")
    problems.console.remove(
        "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
    )
    await panel.get_by_role("button", name="Cancel").click()
    # Delete, after a confirmation.
    await panel.get_by_role("button", name="Delete template").click()
    await panel.get_by_role("button", name="Delete “Greeting”").click()
    await expect(panel.get_by_label("Template", exact=True)).not_to_contain_text("Greeting")
    problems.assert_none()


async def test_attachments_by_picker_and_drop(
    page: Page,
    platform,
    client,
    provider_app,  # noqa: F811
    remote_model,  # noqa: F811
    monkeypatch,
    screenshot_dir: Path,
) -> None:
    problems = await watch(page)
    provider_app.state.chunk_delay_seconds = 0.01
    base = await open_conversation(page, client, remote_model, "Files")
    composer = page.locator("form.composer")
    pending = page.get_by_role("list", name="Files to send")
    # The picker is reached from the keyboard, right after the message.
    await page.get_by_label("Message", exact=True).focus()
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Attach files")).to_be_focused()
    # The picker: the file shows with its size, and goes again with "Remove".
    await page.get_by_label("Attach files").set_input_files(
        [{"name": "draft.txt", "mimeType": "text/plain", "buffer": b"not this one"}]
    )
    await expect(pending).to_contain_text("draft.txt")
    await expect(pending).to_contain_text("12 B")
    await pending.get_by_role("button", name="Remove draft.txt").click()
    await expect(pending).not_to_contain_text("draft.txt")
    listed = await client.get(f"{base}/attachments", headers=remote_model[0].headers)
    assert listed.json() == []
    await page.get_by_label("Attach files").set_input_files(
        [{"name": "notes.md", "mimeType": "text/markdown", "buffer": b"# Notes\n\nTides.\n"}]
    )
    await expect(pending).to_contain_text("notes.md")
    # Drag and drop onto the composer.
    dropped = await page.evaluate_handle(
        """() => {
            const data = new DataTransfer();
            data.items.add(new File(["a,b\\n1,2\\n"], "table.csv", { type: "text/csv" }));
            return data;
        }"""
    )
    await composer.dispatch_event("dragenter", {"dataTransfer": dropped})
    await expect(composer).to_have_class("composer dragging")
    await composer.dispatch_event("drop", {"dataTransfer": dropped})
    await expect(composer).to_have_class("composer")
    await expect(pending).to_contain_text("table.csv")
    await page.get_by_label("Message", exact=True).fill("What do they say")
    await page.get_by_role("button", name="Send").click()
    await expect(answer(page, "complete")).to_have_count(1)
    sent = page.locator(".message.user").get_by_role("list", name="Attachments")
    await expect(sent).to_contain_text("notes.md")
    await expect(sent).to_contain_text("table.csv")
    await expect(pending.locator("li")).to_have_count(0)
    await page.reload()
    sent = page.locator(".message.user").get_by_role("list", name="Attachments")
    await expect(sent.locator("li")).to_have_count(2)
    async with page.expect_download() as downloaded:
        await sent.get_by_role("button", name="Download table.csv").click()
    download = await downloaded.value
    assert download.suggested_filename == "table.csv"
    assert Path(await download.path()).read_bytes() == b"a,b\n1,2\n"
    await save_screenshot(page, screenshot_dir, "webapp-chat-attachments")
    # Too large: the API's detail, next to the file's name.
    settings = platform.apps["inference"].state.inference.settings
    monkeypatch.setattr(settings, "attachment_max_bytes", 1000)
    await page.get_by_label("Attach files").set_input_files(
        [{"name": "big.txt", "mimeType": "text/plain", "buffer": b"a" * 5000}]
    )
    await expect(page.locator(".attachment-errors")).to_contain_text(
        "big.txt: The attachment is larger than 1000 bytes"
    )
    await expect(pending.locator("li")).to_have_count(0)
    problems.console = [c for c in problems.console if "413" not in c]  # the refused upload
    problems.assert_none()


async def test_json_and_csv_attachments_open_in_the_viewer(
    page: Page,
    client,
    provider_app,  # noqa: F811
    remote_model,  # noqa: F811
    screenshot_dir: Path,
) -> None:
    problems = await watch(page)
    provider_app.state.chunk_delay_seconds = 0.01
    await open_conversation(page, client, remote_model, "Data")
    config = {"model": {"layers": 2, "heads": [4, 8]}, "ok": True}
    await page.get_by_label("Attach files").set_input_files(
        [
            {
                "name": "scores.csv",
                "mimeType": "text/csv",
                "buffer": b'name,score\r\nada,7\r\n"bob, jr",12\r\ncy,9\r\n',
            },
            {
                "name": "config.json",
                "mimeType": "application/json",
                "buffer": json.dumps(config).encode(),
            },
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"just text"},
        ]
    )
    pending = page.get_by_role("list", name="Files to send")
    await expect(pending.locator("li.attachment")).to_have_count(3)
    await page.get_by_label("Message", exact=True).fill("Read these")
    await page.get_by_role("button", name="Send").click()
    await expect(answer(page, "complete")).to_have_count(1)
    sent = page.locator(".message.user").get_by_role("list", name="Attachments")
    await expect(sent.locator("li")).to_have_count(3)
    # Plain text has no viewer; JSON and CSV do.
    await expect(sent.get_by_role("button", name=re.compile("in the viewer$"))).to_have_count(2)

    # The CSV as a table, fetched through the API, sorted by a column (as numbers) both ways.
    open_csv = sent.get_by_role("button", name="Open scores.csv in the viewer")
    await expect(open_csv).to_have_attribute("aria-expanded", "false")
    await open_csv.click()
    region = page.get_by_role("region", name="scores.csv in the viewer")
    table = region.get_by_role("table", name="scores.csv")
    rows = table.locator("tbody tr")
    await expect(rows).to_have_count(3)
    await expect(rows.nth(1)).to_have_text("bob, jr12")
    header = table.get_by_role("columnheader", name="score")
    await header.get_by_role("button", name="score").click()
    await expect(header).to_have_attribute("aria-sort", "ascending")
    await expect(rows.locator("td:nth-child(2)")).to_have_text(["7", "9", "12"])
    await header.get_by_role("button", name="score").click()
    await expect(header).to_have_attribute("aria-sort", "descending")
    await expect(rows.nth(0)).to_have_text("bob, jr12")
    close_csv = sent.get_by_role("button", name="Close the viewer of scores.csv")
    await expect(close_csv).to_have_attribute("aria-expanded", "true")

    # The JSON as a tree: its top level open, a branch opened by a click.
    await sent.get_by_role("button", name="Open config.json in the viewer").click()
    tree = page.get_by_role("region", name="config.json in the viewer").get_by_role(
        "list", name="config.json"
    )
    await expect(tree.locator(".json-toggle").first).to_have_attribute("aria-expanded", "true")
    branch = tree.get_by_role("button", name=re.compile(r"^model: \{2 keys\}"))
    await expect(branch).to_have_attribute("aria-expanded", "false")
    await branch.click()
    await expect(branch).to_have_attribute("aria-expanded", "true")
    await expect(tree.locator("li.json-leaf", has_text="layers")).to_have_text("layers: 2")
    heads = tree.get_by_role("button", name=re.compile(r"^heads: \[2 items\]"))
    await expect(heads).to_be_visible()
    await save_screenshot(page, screenshot_dir, "webapp-chat-attachment-viewer")

    # Closed again, the CSV's viewer goes; the JSON's stays open.
    await close_csv.click()
    await expect(region).to_have_count(0)
    await expect(tree).to_be_visible()
    problems.assert_none()


async def test_export_as_json_and_markdown_at_phone_width(
    page: Page,
    provider_app,  # noqa: F811
    remote_model,  # noqa: F811
    screenshot_dir: Path,
) -> None:
    problems = await watch(page)
    provider_app.state.chunk_delay_seconds = 0.01
    await page.set_viewport_size({"width": 390, "height": 844})
    await start_chat(page, remote_model, "red green blue")
    await expect(answer(page, "complete").locator(".content")).to_have_text("eulb neerg der")
    await expect(page.get_by_role("heading", name="red green blue", level=1)).to_be_visible()
    async with page.expect_download() as downloaded:
        await page.get_by_role("button", name="Export JSON").click()
    download = await downloaded.value
    assert download.suggested_filename.endswith(".json")
    document: dict[str, Any] = json.loads(Path(await download.path()).read_text())
    assert document["format"] == "llmnet.conversation"
    assert [m["content"] for m in document["messages"]] == ["red green blue", "eulb neerg der"]
    await expect(page.get_by_role("status")).to_have_text("Exported as JSON.")
    async with page.expect_download() as downloaded:
        await page.get_by_role("button", name="Export Markdown").click()
    download = await downloaded.value
    assert download.suggested_filename.endswith(".md")
    markdown = Path(await download.path()).read_text()
    assert "red green blue" in markdown
    assert "eulb neerg der" in markdown
    # Nothing wider than the phone, with the templates open too.
    await page.locator("summary", has_text="Prompt templates").click()
    await expect(page.get_by_label("Preview of the prompt")).to_be_visible()
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, overflow
    await save_screenshot(page, screenshot_dir, "webapp-chat-phone")
    problems.assert_none()
