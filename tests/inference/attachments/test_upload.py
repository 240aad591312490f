"""Uploading attachments through the gateway: each accepted type, its text and tokens, and
every refusal."""

from __future__ import annotations

import math
import uuid

from transformers import AutoTokenizer

from tests.inference.attachments.conftest import conversation_of, path, upload
from tests.inference.attachments.files import (
    CORRUPT_PDF,
    ENCRYPTED_DOCX,
    PNG,
    docx_file,
    encrypted_pdf,
    minimal_pdf,
    owner_only_pdf,
)


async def test_pdf_text_is_extracted(client, owner, chat):
    response = await upload(
        client, owner, chat, "report.pdf", minimal_pdf("Quarterly revenue grew", "Page two")
    )
    assert response.status_code == 201
    body = response.json()
    assert body["kind"] == "pdf"
    assert body["truncated"] is False
    assert body["note"] is None
    detail = await client.get(path(chat, body["id"]), headers=owner.headers)
    assert detail.status_code == 200
    assert "Quarterly revenue grew" in detail.json()["text"]
    assert "Page two" in detail.json()["text"]


async def test_docx_paragraphs_and_tables_are_extracted(client, owner, chat):
    content = docx_file("Meeting notes", "Ship on Friday", table=[["owner", "task"]])
    response = await upload(client, owner, chat, "notes.docx", content)
    assert response.status_code == 201
    assert response.json()["kind"] == "docx"
    text = (await client.get(path(chat, response.json()["id"]), headers=owner.headers)).json()[
        "text"
    ]
    assert text == "Meeting notes\nShip on Friday\nowner\ttask"


async def test_text_types_are_recognised(client, owner, chat):
    cases = {
        "a.txt": (b"plain words", "txt"),
        "b.md": (b"# Heading\n\nbody", "md"),
        "c.json": (b'{"key": [1, 2]}', "json"),
        "d.csv": (b"name,score\nada,3\n", "csv"),
        "no-extension": (b"just text", "txt"),
    }
    for name, (content, kind) in cases.items():
        response = await upload(client, owner, chat, name, content)
        assert response.status_code == 201, name
        assert response.json()["kind"] == kind, name


async def test_pdf_is_recognised_by_content_not_name(client, owner, chat):
    response = await upload(client, owner, chat, "scan.txt", minimal_pdf("inside a pdf"))
    assert response.status_code == 201
    assert response.json()["kind"] == "pdf"


async def test_tokens_are_counted_by_the_models_tokenizer(client, owner, chat, tiny_llama_dir):
    text = "the quick brown fox jumps over the lazy dog " * 5
    response = await upload(client, owner, chat, "fox.txt", text.encode())
    assert response.status_code == 201
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    expected = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    assert response.json()["token_counter"] == "model"
    assert response.json()["tokens"] == expected
    assert response.json()["size"] == len(text.encode())


async def test_remote_or_unknown_models_get_an_estimate(client, platform, owner):
    # A model the hub no longer knows (as for one at an external provider, no tokenizer here).
    chat = await conversation_of(platform, owner, uuid.uuid4())
    text = "x" * 101
    response = await upload(client, owner, chat, "x.txt", text.encode())
    assert response.status_code == 201
    assert response.json()["token_counter"] == "estimate"
    assert response.json()["tokens"] == math.ceil(101 / 4)


async def test_long_text_is_truncated_with_a_note(client, platform, owner, chat, monkeypatch):
    settings = platform.apps["inference"].state.inference.settings
    monkeypatch.setattr(settings, "attachment_max_tokens", 10)
    text = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu " * 4
    response = await upload(client, owner, chat, "long.txt", text.encode())
    assert response.status_code == 201
    body = response.json()
    assert body["truncated"] is True
    assert body["tokens"] == 10
    assert body["extracted_tokens"] > 10
    assert "first 10 tokens" in body["note"]
    kept = (await client.get(path(chat, body["id"]), headers=owner.headers)).json()["text"]
    assert text.startswith(kept)
    assert len(kept) < len(text)


async def test_encrypted_pdf_is_422(client, owner, chat):
    response = await upload(client, owner, chat, "secret.pdf", encrypted_pdf("hidden"))
    assert response.status_code == 422
    assert response.json()["code"] == "encrypted_file"
    assert "password" in response.json()["detail"]


async def test_owner_password_only_pdf_opens(client, owner, chat):
    response = await upload(client, owner, chat, "locked.pdf", owner_only_pdf("printable text"))
    assert response.status_code == 201
    assert response.json()["kind"] == "pdf"


async def test_password_protected_docx_is_422(client, owner, chat):
    response = await upload(client, owner, chat, "secret.docx", ENCRYPTED_DOCX)
    assert response.status_code == 422
    assert response.json()["code"] == "encrypted_file"


async def test_corrupt_pdf_is_422(client, owner, chat):
    response = await upload(client, owner, chat, "broken.pdf", CORRUPT_PDF)
    assert response.status_code == 422
    assert response.json()["code"] in {"corrupt_file", "no_text"}


async def test_corrupt_docx_is_422(client, owner, chat):
    content = docx_file("fine")
    response = await upload(client, owner, chat, "broken.docx", content[: len(content) // 2])
    assert response.status_code == 422
    assert response.json()["code"] == "corrupt_file"


async def test_unknown_binary_is_422(client, owner, chat):
    response = await upload(client, owner, chat, "image.png", PNG)
    assert response.status_code == 422
    assert response.json()["code"] == "unknown_file_type"


async def test_name_that_lies_about_the_content_is_422(client, owner, chat):
    response = await upload(client, owner, chat, "report.pdf", b"not really a pdf")
    assert response.status_code == 422
    assert response.json()["code"] == "unknown_file_type"
    assert "named .pdf" in response.json()["detail"]


async def test_invalid_json_is_422(client, owner, chat):
    response = await upload(client, owner, chat, "data.json", b'{"open": ')
    assert response.status_code == 422
    assert response.json()["code"] == "corrupt_file"


async def test_empty_file_is_422(client, owner, chat):
    response = await upload(client, owner, chat, "empty.txt", b"")
    assert response.status_code == 422
    assert response.json()["code"] == "no_text"


async def test_pdf_without_text_is_422(client, owner, chat):
    response = await upload(client, owner, chat, "blank.pdf", minimal_pdf(""))
    assert response.status_code == 422
    assert response.json()["code"] == "no_text"


async def test_too_large_is_413_and_stores_nothing(client, platform, owner, chat, monkeypatch):
    settings = platform.apps["inference"].state.inference.settings
    monkeypatch.setattr(settings, "attachment_max_bytes", 1000)
    response = await upload(client, owner, chat, "big.txt", b"a" * 5000)
    assert response.status_code == 413
    assert response.json()["code"] == "attachment_too_large"
    stored = platform.common["data_dir"] / "storage" / "conversations" / chat / "attachments"
    assert not stored.exists() or not any(p.is_file() for p in stored.rglob("*"))
    assert (await client.get(path(chat), headers=owner.headers)).json() == []


async def test_too_large_without_content_length_is_413(client, platform, owner, chat, monkeypatch):
    settings = platform.apps["inference"].state.inference.settings
    monkeypatch.setattr(settings, "attachment_max_bytes", 70_000)
    # Past the multipart allowance, but the server only finds out while reading the stream.
    boundary = "bnd"
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n'
        ).encode()
        + b"a" * 200_000
        + f"\r\n--{boundary}--\r\n".encode()
    )

    async def chunks():
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    response = await client.post(
        path(chat),
        content=chunks(),
        headers={**owner.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413


async def test_wrong_field_name_is_422(client, owner, chat):
    response = await upload(client, owner, chat, "a.txt", b"text", field="upload")
    assert response.status_code == 422
    assert response.json()["code"] == "unexpected_field"


async def test_not_multipart_is_422(client, owner, chat):
    response = await client.post(path(chat), json={"file": "x"}, headers=owner.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "malformed_multipart"


async def test_attachment_count_is_capped(client, platform, owner, chat, monkeypatch):
    settings = platform.apps["inference"].state.inference.settings
    monkeypatch.setattr(settings, "attachments_per_conversation", 1)
    assert (await upload(client, owner, chat, "a.txt", b"one")).status_code == 201
    response = await upload(client, owner, chat, "b.txt", b"two")
    assert response.status_code == 409
    assert response.json()["code"] == "too_many_attachments"


async def test_unknown_conversation_is_404(client, owner):
    response = await upload(client, owner, str(uuid.uuid4()), "a.txt", b"text")
    assert response.status_code == 404
    assert response.json()["code"] == "conversation_not_found"
