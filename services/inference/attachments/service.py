"""Attachments: files given to a conversation as context.

The original streams into object storage (`conversations/<id>/attachments/<id>/original`) and
into a temporary spool file at once; the text is then read from the spool (`extract.py`), cut
to INFERENCE_ATTACHMENT_MAX_TOKENS tokens (`tokens.py`) and stored with the row. As with model
uploads, no transaction stays open while the body arrives: access is checked before, and again
when the row is written (the conversation may have been deleted meanwhile). Any failure removes
the stored original: nothing is left behind.

Writers of the conversation (its owner, read-write participants) upload and delete; everyone
who may read it reads the attachments; everyone else gets 404. `context_for` gives the message
builder the texts, `purge` removes a conversation's originals and rows for the purge job.
"""

from __future__ import annotations

import tempfile
import unicodedata
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from services.inference.attachments import repository
from services.inference.attachments.extract import extract
from services.inference.attachments.schemas import AttachmentDetail, AttachmentRead
from services.inference.attachments.tokens import fit
from services.inference.models import Attachment, AttachmentKind, Conversation, TokenCounter
from shared.auth.identity import Identity
from shared.db import after_commit, session_scope
from shared.errors import Conflict, NotFound, PayloadTooLarge, UnprocessableEntity
from shared.models_client import ModelNotFound
from shared.multipart import MalformedMultipart, iter_parts
from shared.storage import Storage

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from services.inference.deps import InferenceContext

_MULTIPART_OVERHEAD = 64 * 1024
# A token is rarely more than a few characters; reading 32 characters a token of the limit is
# always enough to fill it.
_CHARS_PER_TOKEN_READ = 32
MEDIA_TYPES = {
    AttachmentKind.TXT: "text/plain; charset=utf-8",
    AttachmentKind.MD: "text/markdown; charset=utf-8",
    AttachmentKind.JSON: "application/json",
    AttachmentKind.CSV: "text/csv; charset=utf-8",
    AttachmentKind.DOCX: (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    ),
    AttachmentKind.PDF: "application/pdf",
}


class AttachmentNotFound(NotFound):
    code = "attachment_not_found"


class TooManyAttachments(Conflict):
    code = "too_many_attachments"


@dataclass(frozen=True, slots=True)
class AttachmentContext:
    """An attachment's text as it goes into a conversation's context."""

    filename: str
    text: str
    tokens: int
    truncated: bool


def attachments_prefix(conversation_id: uuid.UUID) -> str:
    return f"conversations/{conversation_id}/attachments"


def _note(attachment: Attachment) -> str | None:
    if not attachment.truncated:
        return None
    return (
        f"Only the first {attachment.tokens} tokens of this file's text are part of the "
        f"conversation's context (it has at least {attachment.extracted_tokens}); the rest was "
        "left out (the limit is the INFERENCE_ATTACHMENT_MAX_TOKENS setting)."
    )


def _read(attachment: Attachment) -> AttachmentRead:
    return AttachmentRead(
        id=attachment.id,
        conversation_id=attachment.conversation_id,
        uploader_id=attachment.uploader_id,
        filename=attachment.filename,
        kind=AttachmentKind(attachment.kind),
        size=attachment.size,
        sha256=attachment.sha256,
        tokens=attachment.tokens,
        extracted_tokens=attachment.extracted_tokens,
        truncated=attachment.truncated,
        token_counter=TokenCounter(attachment.token_counter),
        note=_note(attachment),
        created_at=attachment.created_at,
    )


def _clean_filename(raw: str) -> str:
    """The name without folders or control characters, at most 255 characters."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    if not name or name in {".", ".."}:
        raise UnprocessableEntity(
            "The file part needs a file name (e.g. curl -F file=@notes.pdf).", code="no_filename"
        )
    return name[-255:]


async def _accessible(
    session: AsyncSession, caller: Identity, conversation_id: uuid.UUID, *, write: bool = False
) -> Conversation:
    # Imported here: the conversations service imports this module (for `purge`).
    from services.inference.conversations.service import conversation_service

    return await conversation_service.accessible(session, caller, conversation_id, write=write)


class AttachmentService:
    # -- upload ---------------------------------------------------------------------------
    async def upload(
        self,
        ctx: InferenceContext,
        request: Request,
        conversation_id: uuid.UUID,
        caller: Identity,
    ) -> AttachmentRead:
        settings = ctx.settings
        declared = request.headers.get("content-length")
        if (
            declared
            and declared.isdigit()
            and int(declared) > settings.attachment_max_bytes + _MULTIPART_OVERHEAD
        ):
            raise self._too_large(settings.attachment_max_bytes)
        async with session_scope(ctx.sessionmaker) as session:
            conversation = await _accessible(session, caller, conversation_id, write=True)
            if (
                await repository.count_for(session, conversation_id)
                >= settings.attachments_per_conversation
            ):
                raise TooManyAttachments(
                    f"This conversation has {settings.attachments_per_conversation} "
                    "attachments, the most allowed; delete one first."
                )
            model_id = conversation.model_id
        attachment_id = uuid.uuid4()
        key = f"{attachments_prefix(conversation_id)}/{attachment_id}/original"
        tmp_dir = settings.data_dir / "tmp"
        await anyio.Path(tmp_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
            spool = Path(tmp) / "upload"
            try:
                filename, size, sha256 = await self._receive(ctx, request, key, spool)
                max_chars = settings.attachment_max_tokens * _CHARS_PER_TOKEN_READ
                extracted = await anyio.to_thread.run_sync(extract, spool, filename, max_chars)
                tokenizer = await self._tokenizer(ctx, caller, model_id)
                fitted, counter = await fit(
                    extracted.text, settings.attachment_max_tokens, tokenizer
                )
                async with session_scope(ctx.sessionmaker) as session:
                    await _accessible(session, caller, conversation_id, write=True)
                    attachment = Attachment(
                        id=attachment_id,
                        conversation_id=conversation_id,
                        uploader_id=caller.user_id,
                        filename=filename,
                        kind=extracted.kind,
                        size=size,
                        sha256=sha256,
                        storage_key=key,
                        text=fitted.text,
                        tokens=fitted.tokens,
                        extracted_tokens=fitted.extracted_tokens,
                        truncated=fitted.truncated or extracted.cut,
                        token_counter=counter,
                    )
                    session.add(attachment)
                    await session.flush()
                    return _read(attachment)
            except BaseException:
                # Shielded: a cancelled upload must still remove what it stored.
                with anyio.CancelScope(shield=True):
                    await ctx.storage.delete(key)
                raise

    def _too_large(self, limit: int) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"The attachment is larger than {limit} bytes, the most allowed "
            "(the INFERENCE_ATTACHMENT_MAX_BYTES setting).",
            code="attachment_too_large",
        )

    async def _receive(
        self, ctx: InferenceContext, request: Request, key: str, spool: Path
    ) -> tuple[str, int, str]:
        """Stream the one `file` part to storage and to `spool`; its name, size and sha256."""
        limit = ctx.settings.attachment_max_bytes
        received: tuple[str, int, str] | None = None
        stream: AsyncIterator[bytes] = request.stream()
        async for part in iter_parts(stream, request.headers.get("content-type")):
            if part.name != "file" or part.filename is None:
                raise UnprocessableEntity(
                    f"Unexpected form field '{part.name}': send one file as the 'file' field "
                    "(curl -F file=@notes.pdf).",
                    code="unexpected_field",
                )
            if received is not None:
                raise UnprocessableEntity("Send one file per upload.", code="one_file_per_upload")
            filename = _clean_filename(part.filename)
            async with await anyio.open_file(spool, "wb") as out:

                async def tee(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
                    size = 0
                    async for chunk in chunks:
                        size += len(chunk)
                        if size > limit:
                            raise self._too_large(limit)
                        await out.write(chunk)
                        yield chunk

                stored = await ctx.storage.put(key, tee(part.chunks()), max_bytes=limit)
            received = (filename, stored.size, stored.sha256)
        if received is None:
            raise MalformedMultipart(
                "The upload has no file: send it as the 'file' field (curl -F file=@notes.pdf)."
            )
        return received

    async def _tokenizer(
        self, ctx: InferenceContext, caller: Identity, model_id: uuid.UUID
    ) -> PreTrainedTokenizerBase | None:
        """The conversation model's tokenizer when this service runs it; None for models at
        external providers (and for a model the caller can no longer use: the estimate)."""
        from services.inference.openai.service import openai_service

        try:
            model = await ctx.models.access_by_id(model_id, caller)
        except ModelNotFound:
            return None
        if model.remote is not None or model.active_version is None:
            return None
        engine = await openai_service.engine_for(ctx, model)
        return engine.tokenizer

    # -- reading --------------------------------------------------------------------------
    async def listing(
        self, session: AsyncSession, caller: Identity, conversation_id: uuid.UUID
    ) -> list[AttachmentRead]:
        await _accessible(session, caller, conversation_id)
        return [_read(a) for a in await repository.list_for(session, conversation_id)]

    async def _get(
        self,
        session: AsyncSession,
        caller: Identity,
        conversation_id: uuid.UUID,
        attachment_id: uuid.UUID,
        *,
        write: bool = False,
    ) -> Attachment:
        await _accessible(session, caller, conversation_id, write=write)
        attachment = await repository.get(session, conversation_id, attachment_id)
        if attachment is None:
            raise AttachmentNotFound("No such attachment.")
        return attachment

    async def get(
        self,
        session: AsyncSession,
        caller: Identity,
        conversation_id: uuid.UUID,
        attachment_id: uuid.UUID,
    ) -> AttachmentDetail:
        attachment = await self._get(session, caller, conversation_id, attachment_id)
        return AttachmentDetail(**_read(attachment).model_dump(), text=attachment.text)

    async def original(
        self,
        session: AsyncSession,
        storage: Storage,
        caller: Identity,
        conversation_id: uuid.UUID,
        attachment_id: uuid.UUID,
    ) -> tuple[Attachment, AsyncIterator[bytes]]:
        attachment = await self._get(session, caller, conversation_id, attachment_id)
        return attachment, storage.open(attachment.storage_key)

    async def delete(
        self,
        session: AsyncSession,
        storage: Storage,
        caller: Identity,
        conversation_id: uuid.UUID,
        attachment_id: uuid.UUID,
    ) -> None:
        attachment = await self._get(session, caller, conversation_id, attachment_id, write=True)
        await session.delete(attachment)
        await session.flush()
        key = attachment.storage_key

        async def _delete_original() -> None:
            await storage.delete(key)

        # Once the row is gone for good; should this fail, the conversation's purge still
        # removes everything under its prefix.
        after_commit(session, _delete_original)

    # -- for the other conversation services ---------------------------------------------
    async def context_for(
        self, session: AsyncSession, conversation_id: uuid.UUID
    ) -> list[AttachmentContext]:
        """The conversation's attachments as context, oldest first."""
        return [
            AttachmentContext(a.filename, a.text, a.tokens, a.truncated)
            for a in await repository.list_for(session, conversation_id)
        ]

    async def purge(
        self, session: AsyncSession, storage: Storage, conversation_id: uuid.UUID
    ) -> None:
        """Remove the conversation's originals from storage, then its attachment rows."""
        await storage.delete_prefix(attachments_prefix(conversation_id))
        await repository.delete_for(session, conversation_id)


attachment_service = AttachmentService()
