"""A post as the API answers it, built from its row without validation: the same answer as
validating it would give, every field included."""

from __future__ import annotations

import uuid

from services.feed.models import Post
from services.feed.posts.routes import read
from services.feed.posts.schemas import PostRead
from services.feed.timelines import repository
from shared.db import session_scope
from tests.feed.conftest import publish


async def test_read_matches_a_validated_post(client, platform, worker_ctx, owner, llama):
    published = await publish(client, worker_ctx, owner, llama)
    async with session_scope(platform.sessionmaker) as session:
        post = await session.get(Post, uuid.UUID(published["id"]))
    assert post is not None

    built = read(post)
    assert built.model_fields_set == set(PostRead.model_fields)
    validated = PostRead.model_validate(built.model_dump())
    assert built.model_dump_json() == validated.model_dump_json()
    assert built.model_dump(mode="json") == published


async def test_posts_by_id_reads_outside_a_transaction(client, platform, worker_ctx, owner, llama):
    posts = [await publish(client, worker_ctx, owner, llama) for _ in range(2)]
    ids = [uuid.UUID(p["id"]) for p in posts]
    async with session_scope(platform.sessionmaker) as session:
        found = await repository.posts_by_id(session, [*ids, uuid.uuid4()])
        options = (await session.connection()).sync_connection.get_execution_options()
        assert options["isolation_level"] == "AUTOCOMMIT"
    assert sorted(found) == sorted(ids)
