"""Searching people: by username or display name, never by email; banned accounts left out;
follow counts and whether the caller follows each."""

from __future__ import annotations

from tests.factories import admin_session, user_session


async def test_people_are_found_by_name_not_by_email(client):
    ada = await user_session(client, "ada_l")
    await client.patch("/api/v1/users/me", json={"display_name": "Countess"}, headers=ada.headers)
    await user_session(client, "bob")

    by_name = await client.get("/api/v1/users", params={"q": "ADA"})
    assert by_name.status_code == 200
    assert [u["username"] for u in by_name.json()["items"]] == ["ada_l"]
    assert "email" not in by_name.json()["items"][0]
    by_display = await client.get("/api/v1/users", params={"q": "count"})
    assert [u["username"] for u in by_display.json()["items"]] == ["ada_l"]
    by_email = await client.get("/api/v1/users", params={"q": "example.com"})
    assert by_email.json()["items"] == []


async def test_search_shows_follow_counts_and_the_callers_follows(client):
    me = await user_session(client, "seeker")
    target = await user_session(client, "target")
    followed = await client.post(f"/api/v1/users/{target.username}/follow", headers=me.headers)
    assert followed.status_code == 200

    mine = await client.get("/api/v1/users", params={"q": "target"}, headers=me.headers)
    assert mine.status_code == 200
    (item,) = mine.json()["items"]
    assert item["followers_count"] == 1
    assert item["followed_by_me"] is True
    anonymous = await client.get("/api/v1/users", params={"q": "seeker"})
    (item,) = anonymous.json()["items"]
    assert item["following_count"] == 1
    assert item["followed_by_me"] is None


async def test_banned_people_are_left_out_and_pages_follow_the_cursor(client, platform):
    admin = await admin_session(client, platform)
    names = ["pp_a", "pp_b", "pp_c"]
    sessions = [await user_session(client, name) for name in names]
    banned = await client.post(
        f"/api/v1/admin/users/{sessions[1].id}/ban", json={"reason": "spam"}, headers=admin.headers
    )
    assert banned.status_code == 200

    seen: list[str] = []
    cursor = None
    while True:
        params = {"q": "pp_", "limit": 1} | ({"cursor": cursor} if cursor else {})
        page = await client.get("/api/v1/users", params=params)
        assert page.status_code == 200
        seen += [u["username"] for u in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == ["pp_a", "pp_c"]


async def test_bad_search_parameters_are_refused(client):
    too_long = await client.get("/api/v1/users", params={"q": "x" * 101})
    assert too_long.status_code == 422
    bad_cursor = await client.get("/api/v1/users", params={"cursor": "not-a-cursor"})
    assert bad_cursor.status_code == 422
