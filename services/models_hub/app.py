"""The models_hub service app. Its domain routes arrive with their issue; today it serves the
shared probes (/healthz, /readyz, /metrics) so the platform starts whole."""

from __future__ import annotations

from fastapi import FastAPI

from services.models_hub.config import ModelsHubSettings
from shared.app import create_service_app


def create_app(settings: ModelsHubSettings | None = None) -> FastAPI:
    settings = settings or ModelsHubSettings()
    return create_service_app(
        name="models_hub",
        title="llmnet model hub",
        description="Models, versions, uploads, validation, providers, fine-tunes, likes.",
        settings=settings,
    )
