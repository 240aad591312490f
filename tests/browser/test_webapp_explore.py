"""Explore in the web app: recommendations with their reasons (computed by the feed worker's
real job), model search with filters and sorts, people search with follow, and a person's
profile page with their models; all by keyboard-reachable, labelled controls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, expect

from tests.browser.harness import save_screenshot
from tests.browser.webapp import log_in, watch
from tests.conftest import Platform
from tests.factories import UserSession, user_session
from tests.feed.conftest import publish, tiny_llama_dir, worker_ctx  # noqa: F401 - fixtures
from tests.feed.recommendations.conftest import Recommender, recommender  # noqa: F401
from tests.inference.conftest import ready_model
from tests.models_hub.conftest import create_model, developer


async def _catalog(
    platform: Platform, client: httpx.AsyncClient, ctx: dict[str, Any], weights: Path
) -> dict[str, Any]:
    """A model developer with a ready model (the tiny llama, which has posted once) and an
    empty one; two fans follow the developer and the model and like the post."""
    maker = await developer(client, "maker")
    profile = {"display_name": "Marie Maker", "bio": "I build <b>tiny</b> poets."}
    assert (await client.patch("/api/v1/users/me", json=profile, headers=maker.headers)).is_success
    poet = await ready_model(platform, maker, weights, slug="poet")
    patched = await client.patch(
        f"/api/v1/models/{poet['id']}",
        json={"name": "Tiny Poet", "description": "Writes tiny poems", "tags": ["poetry"]},
        headers=maker.headers,
    )
    assert patched.status_code == 200, patched.text
    draft = await create_model(
        client, maker, name="Draft Coder", description="Not uploaded yet", tags=["code"]
    )
    post = await publish(client, ctx, maker, poet, "A poem about foxes.")
    fans = [await user_session(client) for _ in range(2)]
    for fan in fans:
        followed = await client.post(f"/api/v1/users/{maker.username}/follow", headers=fan.headers)
        assert followed.status_code == 200
        follows = await client.post(f"/api/v1/models/{poet['id']}/follow", headers=fan.headers)
        assert follows.status_code == 200
        liked = await client.post(f"/api/v1/posts/{post['id']}/like", headers=fan.headers)
        assert liked.status_code == 200
    return {"maker": maker, "poet": poet, "draft": draft, "post": post}


async def test_recommendations_search_people_and_a_profile(
    page: Page,
    platform: Platform,
    client: httpx.AsyncClient,
    recommender: Recommender,  # noqa: F811
    worker_ctx: dict[str, Any],  # noqa: F811
    tiny_llama_dir: Path,  # noqa: F811
    screenshot_dir: Path,
) -> None:
    problems = await watch(page)
    made = await _catalog(platform, client, worker_ctx, tiny_llama_dir)
    maker: UserSession = made["maker"]
    await recommender.run()
    viewer = await user_session(client, "newcomer")
    await log_in(page, viewer.username)

    await page.get_by_role("link", name="Explore").click()
    await expect(page.get_by_role("heading", name="Explore", level=1)).to_be_visible()
    # A newcomer gets the popular picks, each saying why.
    await expect(page.get_by_role("heading", name="Popular on llmnet")).to_be_visible()
    models_to_try = page.get_by_role("list", name="Models to try")
    await expect(models_to_try.get_by_role("link", name="maker/poet")).to_be_visible()
    await expect(models_to_try).to_contain_text("Popular on llmnet.")
    people_to_follow = page.get_by_role("list", name="People to follow")
    await expect(people_to_follow).to_contain_text("Followed by many people on llmnet.")
    posts_to_read = page.get_by_role("list", name="Posts to read")
    await expect(posts_to_read).to_contain_text("Popular on llmnet right now.")
    await expect(posts_to_read.get_by_role("link", name="Open the thread")).to_have_attribute(
        "href", f"#/posts/{made['post']['id']}"
    )

    # Model search: every model first, then text, status, source and tag filters.
    results = page.get_by_role("list", name="Model results")
    await expect(results.locator("li[data-model-id]")).to_have_count(2)
    await page.get_by_label("Search models").fill("poems")
    await expect(results.locator("li[data-model-id]")).to_have_count(1)
    await expect(results.get_by_role("link", name="Tiny Poet")).to_be_visible()
    await page.get_by_label("Search models").fill("")
    await page.get_by_label("Status").select_option(label="No version yet")
    await expect(results.locator("li[data-model-id]")).to_have_count(1)
    await expect(results.get_by_role("link", name="Draft Coder")).to_be_visible()
    await page.get_by_label("Status").select_option(label="Any status")
    await page.get_by_label("Tag").fill("poetry")
    await expect(results.locator("li[data-model-id]")).to_have_count(1)
    await expect(results).to_contain_text("maker/poet")
    await page.get_by_label("Tag").fill("")
    await page.get_by_label("Source").select_option(label="External provider")
    await expect(page.get_by_role("status").filter(has_text="No model matches.")).to_be_visible()
    await page.get_by_label("Source").select_option(label="Any source")
    await page.get_by_label("Sort by").select_option(label="Most liked")
    await expect(results.locator("li[data-model-id]")).to_have_count(2)
    await save_screenshot(page, screenshot_dir, "webapp-explore")

    # Follow from the recommendations; the API agrees.
    await people_to_follow.get_by_role("button", name=f"Follow @{maker.username}").click()
    await expect(
        people_to_follow.get_by_role("button", name=f"Unfollow @{maker.username}")
    ).to_have_attribute("aria-pressed", "true")
    profile = await client.get(f"/api/v1/users/{maker.username}", headers=viewer.headers)
    assert profile.json()["followed_by_me"] is True

    # People search by display name, then the profile.
    people = page.get_by_role("list", name="People results")
    await page.get_by_label("Search people").fill("marie")
    await expect(people.locator("li")).to_have_count(1)
    await expect(people).to_contain_text("3 followers")
    await people.get_by_role("link", name="Marie Maker").click()
    await expect(page.get_by_role("heading", name="Marie Maker", level=1)).to_be_visible()
    await expect(page.get_by_text("I build <b>tiny</b> poets.")).to_be_visible()
    theirs = page.get_by_role("list", name=f"Models by @{maker.username}")
    await expect(theirs.get_by_role("link", name="Tiny Poet")).to_be_visible()
    await expect(theirs.get_by_role("link", name="Draft Coder")).to_be_visible()
    followers = page.get_by_role("list", name="Followers")
    await expect(followers.get_by_role("link", name=viewer.username)).to_be_visible()
    await save_screenshot(page, screenshot_dir, "webapp-profile")
    unfollow = page.get_by_role("button", name=f"Unfollow @{maker.username}")
    await unfollow.focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("button", name=f"Follow @{maker.username}")).to_be_visible()
    await expect(page.locator(".profile .followers")).to_have_text("2 followers")
    problems.assert_none()


async def test_an_unknown_person_shows_the_apis_detail_and_phone_width(
    page: Page, client: httpx.AsyncClient
) -> None:
    problems = await watch(page)
    viewer = await user_session(client)
    await log_in(page, viewer.username)
    await page.set_viewport_size({"width": 375, "height": 740})
    await page.goto("/#/explore")
    await expect(page.get_by_role("heading", name="People")).to_be_visible()
    await expect(page.get_by_role("list", name="People results")).to_contain_text(viewer.username)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 375
    # Your own profile: no follow button, a way to edit it instead.
    await page.get_by_role("list", name="People results").get_by_role("link").first.click()
    await expect(page.get_by_role("link", name="Edit your profile")).to_be_visible()
    await expect(page.get_by_role("button", name=f"Follow @{viewer.username}")).to_have_count(0)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 375
    await page.goto("/#/people/nobody_here")
    await expect(page.get_by_role("alert")).to_contain_text("No user named 'nobody_here'")
    assert problems.uncaught == []
    assert [c for c in problems.console if "404" not in c] == []
