"""The inference service app. Its domain routes arrive with their issue; today it serves the
shared probes (/healthz, /readyz, /metrics) so the platform starts whole."""

from __future__ import annotations

from fastapi import FastAPI

from services.inference.config import InferenceSettings
from shared.app import create_service_app


def create_app(settings: InferenceSettings | None = None) -> FastAPI:
    settings = settings or InferenceSettings()
    return create_service_app(
        name="inference",
        title="llmnet inference",
        description="Model runtime, OpenAI-compatible API, conversations.",
        settings=settings,
    )
