"""The SSE helper over real HTTP: the wire format, ids and Last-Event-ID, heartbeats while the
events pause, the lifetime cap, and the events generator's cleanup on every ending."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from shared.errors import BadRequest, install_error_handlers
from shared.sse import (
    EventStreamResponse,
    LastEventId,
    ServerSentEvent,
    document_event_payloads,
    event_stream,
    event_stream_responses,
)
from shared.testing import serve_app


class Number(BaseModel):
    n: int
    word: str


@dataclass
class Probe:
    """What the app's generators saw: lets a test wait for a point instead of a duration."""

    resume: asyncio.Event = field(default_factory=asyncio.Event)
    cleaned: asyncio.Event = field(default_factory=asyncio.Event)
    ending: str | None = None


def build_app(probe: Probe) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get(
        "/numbers",
        responses=event_stream_responses(Number, description="Numbers after Last-Event-ID."),
    )
    async def numbers(last_event_id: LastEventId = None) -> EventStreamResponse:
        try:
            after = int(last_event_id) if last_event_id else 0
        except ValueError as exc:
            raise BadRequest("Last-Event-ID must be a number this stream sent.") from exc

        async def events() -> AsyncIterator[ServerSentEvent]:
            for n in range(after + 1, 4):
                yield ServerSentEvent(data=Number(n=n, word="é"), id=str(n), event="number")

        return event_stream(events())

    @app.get("/openai")
    async def openai_style() -> EventStreamResponse:
        async def events() -> AsyncIterator[ServerSentEvent]:
            yield ServerSentEvent(data={"choices": [{"text": "hi", "finish_reason": None}]})
            yield ServerSentEvent(raw_data="[DONE]")

        return event_stream(events())

    @app.get("/pause")
    async def pause() -> EventStreamResponse:
        async def events() -> AsyncIterator[ServerSentEvent]:
            yield ServerSentEvent(raw_data="before")
            await probe.resume.wait()
            yield ServerSentEvent(raw_data="after")

        return event_stream(events(), heartbeat=0.02)

    async def endless() -> AsyncIterator[ServerSentEvent]:
        try:
            yield ServerSentEvent(raw_data="first")
            await asyncio.Event().wait()  # nothing more, ever
        except (asyncio.CancelledError, GeneratorExit) as exc:
            probe.ending = type(exc).__name__
            raise
        finally:
            probe.cleaned.set()

    @app.get("/capped")
    async def capped() -> EventStreamResponse:
        return event_stream(endless(), heartbeat=None, lifetime=0.2)

    @app.get("/endless")
    async def endless_stream() -> EventStreamResponse:
        return event_stream(endless())

    document_event_payloads(app, Number)
    return app


@pytest.fixture
async def served() -> AsyncIterator[tuple[httpx.AsyncClient, Probe, FastAPI]]:
    probe = Probe()
    app = build_app(probe)
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client, probe, app


async def test_events_carry_json_data_and_ids(served) -> None:
    client, _, _ = served
    response = await client.get("/numbers")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.content.decode() == "".join(
        f'event: number\ndata: {{"n":{n},"word":"é"}}\nid: {n}\n\n' for n in (1, 2, 3)
    )


async def test_last_event_id_resumes_after_that_event(served) -> None:
    client, _, _ = served
    response = await client.get("/numbers", headers={"Last-Event-ID": "2"})
    assert response.status_code == 200
    assert response.text == 'event: number\ndata: {"n":3,"word":"é"}\nid: 3\n\n'
    bad = await client.get("/numbers", headers={"Last-Event-ID": "x" * 300})
    assert bad.status_code == 422
    assert bad.json()["fields"][0]["field"] == "Last-Event-ID"
    foreign = await client.get("/numbers", headers={"Last-Event-ID": "abc"})
    assert foreign.status_code == 400
    assert foreign.json()["code"] == "bad_request"


async def test_the_openai_wire_format(served) -> None:
    client, _, _ = served
    response = await client.get("/openai")
    assert response.content == (
        b'data: {"choices":[{"text":"hi","finish_reason":null}]}\n\ndata: [DONE]\n\n'
    )


async def test_heartbeats_while_the_events_pause(served) -> None:
    client, probe, _ = served
    lines: list[str] = []
    async with client.stream("GET", "/pause") as response:
        async for line in response.aiter_lines():
            lines.append(line)
            if lines.count(": ping") == 2:
                probe.resume.set()  # only now may the second event come
    assert lines[:2] == ["data: before", ""]
    assert lines[-2:] == ["data: after", ""]
    between = lines[2:-2]
    assert set(between) == {": ping", ""}
    assert between.count(": ping") >= 2


async def test_the_lifetime_cap_ends_the_stream_and_cleans_up(served) -> None:
    client, probe, _ = served
    response = await client.get("/capped")
    assert response.status_code == 200
    assert response.text == "data: first\n\n"
    # The generator's cleanup ran before the response ended.
    assert probe.cleaned.is_set()
    assert probe.ending == "CancelledError"


async def test_a_client_going_away_runs_the_cleanup(served) -> None:
    client, probe, _ = served
    async with client.stream("GET", "/endless") as response:
        async for line in response.aiter_lines():
            if line == "data: first":
                break
    await asyncio.wait_for(probe.cleaned.wait(), timeout=10)
    assert probe.ending == "CancelledError"


async def test_the_document_describes_the_event_data(served) -> None:
    client, _, _ = served
    document = (await client.get("/openapi.json")).json()
    content = document["paths"]["/numbers"]["get"]["responses"]["200"]["content"]
    assert content["text/event-stream"]["x-event-data"] == {"$ref": "#/components/schemas/Number"}
    assert set(document["components"]["schemas"]["Number"]["properties"]) == {"n", "word"}
