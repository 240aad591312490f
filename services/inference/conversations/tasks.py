"""arq jobs of conversations: the purge of deleted ones past their undo window."""

from __future__ import annotations

from typing import Any

from services.inference.config import InferenceSettings
from services.inference.conversations.service import conversation_service
from shared.storage.factory import create_storage


async def purge_conversations(ctx: dict[str, Any]) -> dict[str, int]:
    """Remove conversations deleted longer ago than INFERENCE_CONVERSATION_UNDO_SECONDS, their
    attachments (storage and rows) first. Safe to run twice at once: each locks what it takes."""
    settings: InferenceSettings = ctx["settings"]
    storage = create_storage(settings)
    purged = await conversation_service.purge_expired(
        ctx["sessionmaker"], storage, settings.conversation_undo_seconds
    )
    return {"purged": purged}
