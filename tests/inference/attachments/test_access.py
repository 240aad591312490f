"""Reading, downloading and deleting attachments; who may do what; what the other
conversation services get (`context_for`, `purge`); the S3 backend."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from services.inference.attachments.service import attachment_service
from services.inference.models import Attachment
from shared.db import session_scope
from shared.storage.s3 import S3Storage
from tests.factories import user_session
from tests.inference.attachments.conftest import path, share, upload
from tests.inference.attachments.files import docx_file, minimal_pdf
from tests.shared.s3_server import ACCESS_KEY, REGION, SECRET_KEY, moto_s3_server


async def test_list_returns_metadata_oldest_first(client, owner, chat):
    first = (await upload(client, owner, chat, "a.txt", b"first")).json()
    second = (await upload(client, owner, chat, "b.md", b"second")).json()
    response = await client.get(path(chat), headers=owner.headers)
    assert response.status_code == 200
    assert [a["id"] for a in response.json()] == [first["id"], second["id"]]
    assert "text" not in response.json()[0]


async def test_download_returns_the_original_bytes(client, owner, chat):
    content = docx_file("exactly these bytes")
    created = (await upload(client, owner, chat, "résumé.docx", content)).json()
    response = await client.get(path(chat, created["id"], "content"), headers=owner.headers)
    assert response.status_code == 200
    assert response.content == content
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    )
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9.docx" in response.headers["content-disposition"]


async def test_delete_removes_row_and_original(client, platform, owner, chat):
    created = (await upload(client, owner, chat, "a.txt", b"bye")).json()
    original = (
        platform.common["data_dir"]
        / "storage"
        / "conversations"
        / chat
        / "attachments"
        / created["id"]
        / "original"
    )
    assert original.is_file()
    response = await client.delete(path(chat, created["id"]), headers=owner.headers)
    assert response.status_code == 204
    assert not original.exists()
    gone = await client.get(path(chat, created["id"]), headers=owner.headers)
    assert gone.status_code == 404
    assert gone.json()["code"] == "attachment_not_found"


async def test_write_participant_uploads(client, platform, owner, chat):
    writer = await user_session(client)
    await share(platform, chat, writer, "write")
    response = await upload(client, writer, chat, "w.txt", b"from a writer")
    assert response.status_code == 201
    assert response.json()["uploader_id"] == writer.id


async def test_read_participant_reads_but_cannot_upload_or_delete(client, platform, owner, chat):
    reader = await user_session(client)
    await share(platform, chat, reader, "read")
    created = (await upload(client, owner, chat, "a.pdf", minimal_pdf("shared text"))).json()
    listed = await client.get(path(chat), headers=reader.headers)
    assert listed.status_code == 200
    assert len(listed.json()) == 1
    assert (await client.get(path(chat, created["id"]), headers=reader.headers)).status_code == 200
    download = await client.get(path(chat, created["id"], "content"), headers=reader.headers)
    assert download.status_code == 200
    refused = await upload(client, reader, chat, "b.txt", b"nope")
    assert refused.status_code == 403
    assert refused.json()["code"] == "read_only_participant"
    delete = await client.delete(path(chat, created["id"]), headers=reader.headers)
    assert delete.status_code == 403


async def test_other_users_get_404_on_every_route(client, owner, chat):
    stranger = await user_session(client)
    created = (await upload(client, owner, chat, "a.txt", b"private")).json()
    for method, url in [
        ("GET", path(chat)),
        ("GET", path(chat, created["id"])),
        ("GET", path(chat, created["id"], "content")),
        ("DELETE", path(chat, created["id"])),
    ]:
        response = await client.request(method, url, headers=stranger.headers)
        assert response.status_code == 404, (method, url)
    refused = await upload(client, stranger, chat, "b.txt", b"x")
    assert refused.status_code == 404


async def test_attachment_of_another_conversation_is_404(client, platform, owner, chat, llama):
    from tests.inference.attachments.conftest import conversation_of

    other_chat = await conversation_of(platform, owner, llama["id"])
    created = (await upload(client, owner, chat, "a.txt", b"text")).json()
    response = await client.get(path(other_chat, created["id"]), headers=owner.headers)
    assert response.status_code == 404


async def test_anonymous_is_401(client, owner, chat):
    response = await client.get(path(chat))
    assert response.status_code == 401


async def test_context_for_gives_the_texts_in_order(client, platform, owner, chat):
    await upload(client, owner, chat, "one.txt", b"first file")
    await upload(client, owner, chat, "two.pdf", minimal_pdf("second file"))
    async with session_scope(platform.sessionmaker) as session:
        context = await attachment_service.context_for(session, uuid.UUID(chat))
    assert [(c.filename, c.text.strip(), c.truncated) for c in context] == [
        ("one.txt", "first file", False),
        ("two.pdf", "second file", False),
    ]
    assert all(c.tokens > 0 for c in context)


async def test_purge_removes_originals_and_rows(client, platform, owner, chat):
    await upload(client, owner, chat, "one.txt", b"first file")
    storage = platform.apps["inference"].state.inference.storage
    async with session_scope(platform.sessionmaker) as session:
        await attachment_service.purge(session, storage, uuid.UUID(chat))
    root = platform.common["data_dir"] / "storage" / "conversations" / chat
    assert not any(p.is_file() for p in root.rglob("*"))
    async with session_scope(platform.sessionmaker) as session:
        assert (
            await session.scalar(
                Attachment.__table__.select().where(Attachment.conversation_id == uuid.UUID(chat))
            )
            is None
        )


@pytest.fixture
def s3_storage(platform):
    """The inference service's attachments on a real S3-compatible server (moto)."""
    with moto_s3_server() as endpoint:
        storage = S3Storage(
            endpoint, ACCESS_KEY, SECRET_KEY, f"attachments-{uuid.uuid4().hex[:12]}", region=REGION
        )
        app = platform.apps["inference"]
        # starlette's State keeps attributes in a dict; set and restore it by hand.
        local = app.state.inference
        app.state.inference = dataclasses.replace(local, storage=storage)
        try:
            yield storage
        finally:
            app.state.inference = local


async def test_s3_upload_download_delete_and_purge(client, platform, owner, chat, s3_storage):
    content = minimal_pdf("stored in s3")
    created = await upload(client, owner, chat, "s3.pdf", content)
    assert created.status_code == 201
    attachment_id = created.json()["id"]
    key = f"conversations/{chat}/attachments/{attachment_id}/original"
    assert await s3_storage.exists(key)
    download = await client.get(path(chat, attachment_id, "content"), headers=owner.headers)
    assert download.status_code == 200
    assert download.content == content
    deleted = await client.delete(path(chat, attachment_id), headers=owner.headers)
    assert deleted.status_code == 204
    assert not await s3_storage.exists(key)
    second = (await upload(client, owner, chat, "b.txt", b"purge me")).json()
    async with session_scope(platform.sessionmaker) as session:
        await attachment_service.purge(session, s3_storage, uuid.UUID(chat))
    assert not await s3_storage.exists(f"conversations/{chat}/attachments/{second['id']}/original")


async def test_s3_refused_upload_leaves_nothing(client, owner, chat, s3_storage):
    response = await upload(client, owner, chat, "x.png", b"\x89PNG\r\n\x1a\n\x00\x00binary")
    assert response.status_code == 422
    assert await s3_storage.delete_prefix(f"conversations/{chat}/attachments") == 0
