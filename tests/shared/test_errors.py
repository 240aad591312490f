"""Every failure, expected or not, answers the same JSON shape."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from shared.errors import Conflict, install_error_handlers
from shared.observability import ObservabilityMiddleware
from shared.testing import serve_app


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    @app.get("/conflict")
    async def conflict() -> None:
        raise Conflict("Already there.", code="already_there")

    @app.get("/typed/{number}")
    async def typed(number: int) -> dict[str, int]:
        return {"number": number}

    install_error_handlers(app)
    app.add_middleware(ObservabilityMiddleware, service="test")
    return app


async def test_error_shapes():
    async with serve_app(_app()) as url, httpx.AsyncClient(base_url=url) as client:
        boom = await client.get("/boom")
        assert boom.status_code == 500
        assert boom.json()["code"] == "internal_error"
        assert "secret" not in boom.text
        assert boom.json()["request_id"]

        conflict = await client.get("/conflict")
        assert conflict.status_code == 409
        assert conflict.json()["code"] == "already_there"

        typed = await client.get("/typed/abc")
        assert typed.status_code == 422
        assert typed.json()["fields"][0]["field"] == "number"

        missing = await client.get("/nowhere")
        assert missing.status_code == 404
        assert missing.json()["code"] == "not_found"

        method = await client.post("/conflict")
        assert method.status_code == 405
        assert method.json()["code"] == "method_not_allowed"
