"""The purge is a cron of the inference worker."""

from __future__ import annotations

from services.inference.conversations.tasks import purge_conversations
from services.inference.worker import settings_for


def test_the_inference_worker_purges_every_minute(platform):
    settings = settings_for(platform.apps["inference"].state.inference.settings)
    assert purge_conversations in settings["functions"]
    (cron,) = [c for c in settings["cron_jobs"] if c.coroutine is purge_conversations]
    assert cron.second == {15}
    assert cron.minute is None
