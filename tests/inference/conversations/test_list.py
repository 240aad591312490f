"""Listing: newest activity first, grouped by day, pages, the model filter, full-text search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.factories import user_session
from tests.inference.conftest import ready_model
from tests.inference.conversations.conftest import (
    BASE,
    add_message,
    create_conversation,
    set_activity,
)


def _ids(body):
    return [item["id"] for group in body["groups"] for item in group["items"]]


async def _list(client, user, **params):
    response = await client.get(BASE, params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_newest_activity_first_grouped_by_day(client, platform, owner, llama):
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    a = await create_conversation(client, owner, llama["ref"], title="a")
    b = await create_conversation(client, owner, llama["ref"], title="b")
    c = await create_conversation(client, owner, llama["ref"], title="c")
    await set_activity(platform, a["id"], updated_at=today - timedelta(days=2))
    await set_activity(platform, b["id"], updated_at=today - timedelta(days=2, hours=1))
    await set_activity(platform, c["id"], updated_at=today)

    body = await _list(client, owner)
    assert [g["day"] for g in body["groups"]] == [
        today.date().isoformat(),
        (today - timedelta(days=2)).date().isoformat(),
    ]
    assert [[i["title"] for i in g["items"]] for g in body["groups"]] == [["c"], ["a", "b"]]
    assert body["next_cursor"] is None


async def test_a_new_message_moves_a_conversation_up(client, platform, owner, llama):
    old = await create_conversation(client, owner, llama["ref"], title="old")
    await create_conversation(client, owner, llama["ref"], title="new")
    await set_activity(platform, old["id"], updated_at=datetime(2026, 1, 1, tzinfo=UTC))
    await add_message(platform, old["id"], "hello again")
    assert [i["title"] for i in (await _list(client, owner))["groups"][0]["items"]] == [
        "old",
        "new",
    ]


async def test_pages_follow_the_cursor(client, owner, llama):
    made = [await create_conversation(client, owner, llama["ref"], title=f"t{i}") for i in range(5)]
    first = await _list(client, owner, limit=2)
    second = await _list(client, owner, limit=2, cursor=first["next_cursor"])
    third = await _list(client, owner, limit=2, cursor=second["next_cursor"])
    assert third["next_cursor"] is None
    seen = _ids(first) + _ids(second) + _ids(third)
    assert sorted(seen) == sorted(c["id"] for c in made)
    assert len(set(seen)) == 5


async def test_a_forged_cursor_is_422(client, owner):
    response = await client.get(BASE, params={"cursor": "bm9wZQ"}, headers=owner.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_cursor"


async def test_filter_by_model(client, platform, owner, llama, tiny_llama_dir):
    other = await ready_model(platform, owner, tiny_llama_dir, slug="other")
    await create_conversation(client, owner, llama["ref"], title="on llama")
    await create_conversation(client, owner, other["ref"], title="on other")
    body = await _list(client, owner, model_id=other["id"])
    assert [i["title"] for g in body["groups"] for i in g["items"]] == ["on other"]


async def test_search_finds_by_title(client, owner, llama):
    await create_conversation(client, owner, llama["ref"], title="Lighthouse keepers")
    await create_conversation(client, owner, llama["ref"], title="Cooking pasta")
    body = await _list(client, owner, q="lighthouse")
    assert [i["title"] for g in body["groups"] for i in g["items"]] == ["Lighthouse keepers"]


async def test_search_finds_by_message_content(client, platform, owner, llama):
    found = await create_conversation(client, owner, llama["ref"], title="First")
    other = await create_conversation(client, owner, llama["ref"], title="Second")
    first = await add_message(platform, found["id"], "tell me about the storm")
    await add_message(
        platform, found["id"], "the gale rose at dusk", role="assistant", parent_id=first
    )
    await add_message(platform, other["id"], "something else entirely")
    assert _ids(await _list(client, owner, q="gale")) == [found["id"]]
    assert _ids(await _list(client, owner, q='"rose at dusk"')) == [found["id"]]
    assert _ids(await _list(client, owner, q="dusk -gale")) == []
    assert _ids(await _list(client, owner, q="pasta")) == []


async def test_search_keeps_to_the_callers_conversations(client, platform, owner, llama):
    mine = await create_conversation(client, owner, llama["ref"], title="mine")
    await add_message(platform, mine["id"], "zebra")
    stranger = await user_session(client)
    assert _ids(await _list(client, stranger, q="zebra")) == []


async def test_search_and_model_filter_combine(client, platform, owner, llama, tiny_llama_dir):
    other = await ready_model(platform, owner, tiny_llama_dir, slug="other")
    await create_conversation(client, owner, llama["ref"], title="quartz one")
    wanted = await create_conversation(client, owner, other["ref"], title="quartz two")
    assert _ids(await _list(client, owner, q="quartz", model_id=other["id"])) == [wanted["id"]]


async def test_shared_conversations_are_listed_with_the_role(client, owner, llama):
    friend = await user_session(client)
    shared = await create_conversation(client, owner, llama["ref"], title="shared")
    await create_conversation(client, owner, llama["ref"], title="private")
    added = await client.post(
        f"{BASE}/{shared['id']}/participants",
        json={"username": friend.username, "role": "write"},
        headers=owner.headers,
    )
    assert added.status_code == 201
    own = await create_conversation(client, friend, llama["ref"], title="own")
    body = await _list(client, friend)
    roles = {i["title"]: i["role"] for g in body["groups"] for i in g["items"]}
    assert roles == {"shared": "write", "own": "owner"}
    assert own["role"] == "owner"


async def test_deleted_conversations_are_not_listed(client, owner, llama):
    gone = await create_conversation(client, owner, llama["ref"], title="gone")
    await create_conversation(client, owner, llama["ref"], title="kept")
    assert (await client.delete(f"{BASE}/{gone['id']}", headers=owner.headers)).status_code == 200
    assert [i["title"] for g in (await _list(client, owner))["groups"] for i in g["items"]] == [
        "kept"
    ]


async def test_a_too_long_query_is_422(client, owner):
    response = await client.get(BASE, params={"q": "x" * 201}, headers=owner.headers)
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "q"


async def test_pages_interleave_owned_and_shared_in_activity_order(client, platform, owner, llama):
    friend = await user_session(client)
    base = datetime(2026, 11, 1, tzinfo=UTC)
    expected = []
    for i in range(6):
        author = owner if i % 2 else friend
        made = await create_conversation(client, author, llama["ref"], title=f"n{i}")
        if author is owner:
            await client.post(
                f"{BASE}/{made['id']}/participants",
                json={"username": friend.username},
                headers=owner.headers,
            )
        await set_activity(platform, made["id"], updated_at=base + timedelta(hours=i))
        expected.insert(0, made["id"])
    seen, cursor = [], None
    while True:
        params = {"limit": 4} if cursor is None else {"limit": 4, "cursor": cursor}
        body = await _list(client, friend, **params)
        seen += _ids(body)
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == expected


async def test_a_title_and_message_match_is_listed_once(client, platform, owner, llama):
    both = await create_conversation(client, owner, llama["ref"], title="otter facts")
    await add_message(platform, both["id"], "otters hold hands; otter")
    assert _ids(await _list(client, owner, q="otter")) == [both["id"]]
