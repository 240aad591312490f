"""A fine-tune's notification names its job and new version, from the event the hub records
(its `FineTuneEvent`: `fine_tune_id`, `result_version_id`), so clients can link to them."""

from __future__ import annotations

import uuid

from services.models_hub.fine_tunes.schemas import FineTuneEvent
from services.models_hub.models import FineTuneStatus
from shared.db import session_scope
from shared.events import record_event
from tests.feed.notifications.conftest import notifications_of


async def _record_as_the_hub(platform, kind, event: FineTuneEvent, model_id, owner_id):
    # As services/models_hub/fine_tunes/service.py `announce` records it.
    payload = {**event.model_dump(mode="json"), "model_id": model_id, "owner_id": owner_id}
    async with session_scope(platform.sessionmaker) as session:
        record_event(session, f"finetune.{kind}", payload, source="models_hub")


async def test_finetune_notifications_name_the_job_and_the_new_version(
    client, platform, notifier, owner, llama
):
    done, failed = uuid.uuid4(), uuid.uuid4()
    succeeded = FineTuneEvent(
        fine_tune_id=done,
        status=FineTuneStatus.SUCCEEDED,
        result_version_id=uuid.UUID(llama["version_id"]),
    )
    await _record_as_the_hub(platform, "completed", succeeded, llama["id"], owner.id)
    crashed = FineTuneEvent(fine_tune_id=failed, status=FineTuneStatus.FAILED, error="oom")
    await _record_as_the_hub(platform, "failed", crashed, llama["id"], owner.id)
    await notifier.deliver()

    items = await notifications_of(client, owner)
    assert [n["kind"] for n in items] == ["finetune_failed", "finetune_completed"]
    assert items[0]["payload"]["job_id"] == str(failed)
    assert items[0]["payload"]["error"] == "oom"
    assert items[1]["payload"]["job_id"] == str(done)
    assert items[1]["payload"]["version_id"] == llama["version_id"]
