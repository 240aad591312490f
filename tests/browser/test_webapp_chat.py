"""Chat in the web app, against a model at an external provider (the fake OpenAI-compatible
one, which answers the message reversed, one word per event, `chunk_delay_seconds` apart):
tokens arrive one by one, a reload re-attaches, stop, regenerate with siblings, and model
text is shown as text, never as HTML."""

from __future__ import annotations

import asyncio
import itertools
import re
from pathlib import Path
from typing import Any

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, expect

from tests.browser.harness import OfflineGuard, save_screenshot
from tests.browser.webapp import log_in, watch
from tests.inference.conftest import llama, owner, tiny_llama_dir  # noqa: F401 - fixtures
from tests.inference.openai.test_remote import (  # noqa: F401 - fixtures
    allow_loopback,
    provider_app,
    remote_model,
)
from tests.models_hub.conftest import hub_limits  # noqa: F401 - fixture

TWO_WORDS = re.compile(r"\S+ \S+")
WORDS = "one two three four five six seven eight nine ten eleven twelve"


def answer_to(message: str) -> str:
    return " ".join(message[::-1].split())


async def start_chat(page: Page, model: Any, message: str) -> None:
    dev, ref = model
    await log_in(page, dev.username)
    await page.goto("/#/chat")
    await page.get_by_label("Model", exact=True).select_option(ref)
    await page.get_by_label("Message", exact=True).fill(message)
    await page.get_by_role("button", name="Start").click()


def answer(page: Page, status: str | None = None) -> Any:
    selector = ".message.assistant" + (f'[data-status="{status}"]' if status else "")
    return page.locator(selector)


async def texts_while_streaming(page: Page) -> list[str]:
    """Every text the answer showed while it was being written, in order."""
    seen: list[str] = []
    streaming = answer(page, "streaming").locator(".content")
    await expect(streaming).to_be_visible()
    while await streaming.count():
        try:
            text = await streaming.text_content(timeout=1000)
        except PlaywrightError:  # replaced by the finished message meanwhile
            break
        if text and (not seen or seen[-1] != text):
            seen.append(text)
        await asyncio.sleep(0.03)
    return seen


async def test_tokens_stream_in_and_metadata_shows(
    page: Page,
    offline: OfflineGuard,
    provider_app,  # noqa: F811
    remote_model,  # noqa: F811
    screenshot_dir: Path,
) -> None:
    problems = await watch(page)
    provider_app.state.chunk_delay_seconds = 0.15
    await start_chat(page, remote_model, WORDS)
    seen = await texts_while_streaming(page)
    # Several updates before the end, each one longer than the last.
    assert len(seen) >= 4, seen
    assert all(b.startswith(a) for a, b in itertools.pairwise(seen)), seen
    done = answer(page, "complete")
    await expect(done.locator(".content")).to_have_text(answer_to(WORDS))
    await expect(done.locator(".meta")).to_contain_text("12 tokens")
    await expect(done.locator(".meta")).to_contain_text("tokens/s")
    await expect(done.locator(".meta")).to_contain_text("external model")
    # The list on the side holds it under today's group.
    side = page.get_by_role("complementary", name="Conversations")
    await expect(side.get_by_role("heading", name="Today")).to_be_visible()
    await expect(side.get_by_role("link", name=WORDS[:20])).to_be_visible()
    await save_screenshot(page, screenshot_dir, "webapp-chat")
    problems.assert_none()
    assert offline.refused == []


async def test_reload_during_an_answer_reattaches(page: Page, provider_app, remote_model) -> None:  # noqa: F811
    problems = await watch(page)
    provider_app.state.chunk_delay_seconds = 0.5  # 6 s in all: time to reload and go on
    await start_chat(page, remote_model, WORDS)
    streaming = answer(page, "streaming").locator(".content")
    await expect(streaming).to_contain_text(TWO_WORDS)
    await page.reload()
    await expect(page.locator("#account")).to_contain_text(f"@{remote_model[0].username}")
    seen = await texts_while_streaming(page)
    assert len(seen) >= 2, seen  # still arriving after the reload
    await expect(answer(page, "complete").locator(".content")).to_have_text(answer_to(WORDS))
    problems.assert_none()


async def test_stop_keeps_the_text_so_far(page: Page, provider_app, remote_model) -> None:  # noqa: F811
    problems = await watch(page)
    provider_app.state.chunk_delay_seconds = 0.4
    await start_chat(page, remote_model, WORDS)
    await expect(answer(page, "streaming").locator(".content")).to_contain_text(TWO_WORDS)
    await page.get_by_role("button", name="Stop").click()
    stopped = answer(page, "cancelled")
    await expect(stopped.locator(".meta")).to_contain_text("stopped")
    text = ((await stopped.locator(".content").text_content()) or "").strip()
    assert text
    assert answer_to(WORDS).startswith(text)
    assert text != answer_to(WORDS)
    await expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    await expect(page.get_by_role("button", name="Send")).to_be_enabled()
    problems.assert_none()


async def test_regenerate_and_navigate_siblings(page: Page, provider_app, remote_model) -> None:  # noqa: F811
    problems = await watch(page)
    provider_app.state.chunk_delay_seconds = 0.02
    await start_chat(page, remote_model, "red green blue")
    await expect(answer(page, "complete")).to_have_count(1)
    await page.locator("summary", has_text="Parameters").click()
    await page.get_by_label("Max tokens").fill("2")
    await page.get_by_role("button", name="Regenerate").click()
    second = answer(page, "complete")
    await expect(second.locator(".position")).to_have_text("2/2")
    await expect(second.locator(".content")).to_have_text("eulb neerg")  # max_tokens 2
    await second.get_by_role("button", name="Previous").click()
    first = answer(page, "complete")
    await expect(first.locator(".position")).to_have_text("1/2")
    await expect(first.locator(".content")).to_have_text("eulb neerg der")
    # The choice is the conversation's current branch: it survives a reload.
    await page.reload()
    await expect(answer(page, "complete").locator(".position")).to_have_text("1/2")
    await answer(page).get_by_role("button", name="Next").click()
    await expect(answer(page, "complete").locator(".position")).to_have_text("2/2")
    problems.assert_none()


async def test_model_html_is_shown_as_text(page: Page, provider_app, remote_model) -> None:  # noqa: F811
    problems = await watch(page)
    payload = "<img src=x onerror=alert(1)> <script>alert(2)</script> **bold**"
    await start_chat(page, remote_model, payload[::-1])
    done = answer(page, "complete").locator(".content")
    await expect(done).to_contain_text("<img src=x onerror=alert(1)> <script>alert(2)</script>")
    assert await page.locator("main img").count() == 0
    assert await page.locator("main script").count() == 0
    await expect(done.locator("strong")).to_have_text("bold")  # Markdown still renders
    await page.wait_for_timeout(300)
    problems.assert_none()  # no dialog, no console error


async def test_edit_a_message_makes_a_branch(page: Page, provider_app, remote_model) -> None:  # noqa: F811
    problems = await watch(page)
    provider_app.state.chunk_delay_seconds = 0.02
    await start_chat(page, remote_model, "red green blue")
    await expect(answer(page, "complete").locator(".content")).to_have_text("eulb neerg der")
    await page.locator(".message.user").get_by_role("button", name="Edit").click()
    await page.get_by_label("Edit your message").fill("one two")
    await page.get_by_role("button", name="Send edit").click()
    await expect(answer(page, "complete").locator(".content")).to_have_text("owt eno")
    user = page.locator(".message.user")
    await expect(user.locator(".position")).to_have_text("2/2")
    await user.get_by_role("button", name="Previous").click()
    await expect(page.locator(".message.user .content")).to_have_text("red green blue")
    await expect(answer(page, "complete").locator(".content")).to_have_text("eulb neerg der")
    problems.assert_none()


async def test_search_the_conversations(page: Page, client, remote_model) -> None:  # noqa: F811
    problems = await watch(page)
    dev, ref = remote_model
    for title in ("Lighthouses", "Volcanoes"):
        created = await client.post(
            "/api/v1/conversations", headers=dev.headers, json={"model": ref, "title": title}
        )
        assert created.status_code == 201, created.text
    await log_in(page, dev.username)
    await page.goto("/#/chat")
    side = page.get_by_role("complementary", name="Conversations")
    await expect(side.get_by_role("link", name="Lighthouses")).to_be_visible()
    await side.get_by_label("Search conversations").fill("volcanoes")
    await expect(side.get_by_role("link", name="Lighthouses")).to_be_hidden()
    await side.get_by_role("link", name="Volcanoes").click()
    await expect(page.get_by_role("heading", name="Volcanoes", level=1)).to_be_visible()
    await side.get_by_label("Search conversations").fill("nothing-like-this")
    await expect(side).to_contain_text("No conversation matches.")
    problems.assert_none()


async def test_switch_the_model_mid_conversation(
    page: Page,
    provider_app,  # noqa: F811
    remote_model,  # noqa: F811
    llama: dict[str, Any],  # noqa: F811
) -> None:
    problems = await watch(page)
    provider_app.state.chunk_delay_seconds = 0.02
    await start_chat(page, remote_model, "red green blue")
    await expect(answer(page, "complete")).to_have_count(1)
    await page.get_by_label("Model for the next answers").select_option(llama["ref"])
    await page.get_by_role("button", name="Switch model").click()
    await expect(page.get_by_text(f"With {llama['ref']}")).to_be_visible()
    await page.locator("summary", has_text="Parameters").click()
    await page.get_by_label("Max tokens").fill("4")
    await page.get_by_label("Message", exact=True).fill("And now?")
    await page.get_by_label("Message", exact=True).press("Enter")
    answers = answer(page, "complete")
    await expect(answers).to_have_count(2)
    await expect(answers.nth(0).locator(".who")).to_have_text(remote_model[1])
    await expect(answers.nth(1).locator(".who")).to_have_text(llama["ref"])
    # The version by its number, once the model's versions are read, and its id.
    await expect(answers.nth(1).locator(".meta")).to_contain_text(
        f"version 1 ({llama['version_id'][:8]})"
    )
    problems.assert_none()
