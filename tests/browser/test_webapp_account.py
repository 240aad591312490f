"""The account page: editing the profile, and API keys (the secret shown once, then revoked)."""

from __future__ import annotations

import httpx
from playwright.async_api import Page, expect

from tests.browser.webapp import log_in, watch
from tests.factories import user_session


async def test_profile_and_api_keys(page: Page, client: httpx.AsyncClient) -> None:
    problems = await watch(page)
    user = await user_session(client)
    await log_in(page, user.username)
    await page.get_by_role("link", name=f"Account (@{user.username})").click()
    await expect(page.get_by_role("heading", name="Account", level=1)).to_be_visible()

    await page.get_by_label("Display name").fill("Ada L.")
    await page.get_by_label("Bio").fill("Poetical <b>science</b>")
    await page.get_by_role("button", name="Save profile").click()
    await expect(page.get_by_role("status").filter(has_text="Profile saved.")).to_be_visible()
    me = (await client.get("/api/v1/users/me", headers=user.headers)).json()
    assert me["display_name"] == "Ada L."
    assert me["bio"] == "Poetical <b>science</b>"

    await page.get_by_label("Name", exact=True).fill("laptop")
    await page.get_by_label("write").uncheck()
    await page.get_by_role("button", name="Create key").click()
    secret = page.locator(".key-secret")
    await expect(secret).to_contain_text("llm_")
    key = (await secret.text_content() or "").strip()
    keys = page.get_by_role("table", name="API keys")
    await expect(keys.locator("tbody tr")).to_have_count(1)
    await expect(keys).to_contain_text("inference, read")
    by_key = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {key}"})
    assert by_key.status_code == 200
    # Shown once: after a reload the secret is gone, only its prefix stays.
    await page.reload()
    await expect(page.locator(".key-secret")).to_have_count(0)
    await expect(keys).to_contain_text(key[:8])
    assert key not in (await keys.text_content() or "")

    await keys.get_by_role("button", name="Revoke").click()
    await expect(keys).to_contain_text("revoked")
    revoked = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {key}"})
    assert revoked.status_code == 401
    problems.assert_none()
