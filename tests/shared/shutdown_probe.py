"""A service app for the graceful-shutdown test, run by uvicorn in its own process: an endless
event stream and a request that takes as long as it is told."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI

from shared.app import create_service_app
from shared.settings import CommonSettings
from shared.sse import EventStreamResponse, ServerSentEvent, event_stream

router = APIRouter()


@router.get("/stream")
async def stream() -> EventStreamResponse:
    async def events() -> AsyncIterator[ServerSentEvent]:
        n = 0
        while True:
            yield ServerSentEvent(data={"n": n}, id=f"{n}-0")
            n += 1
            await asyncio.sleep(0.2)

    return event_stream(events(), heartbeat=0.5)


@router.get("/slow")
async def slow(seconds: float) -> dict[str, bool]:
    await asyncio.sleep(seconds)
    return {"done": True}


def create_app() -> FastAPI:
    settings = CommonSettings()  # type: ignore[call-arg]
    return create_service_app(
        name="probe",
        title="Shutdown probe",
        description="",
        settings=settings,
        routers=[router],
        uses_database=False,
    )
