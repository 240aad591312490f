"""Admins: how this inference process runs its models (GET /api/v1/admin/engine)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from services.inference.deps import InferenceDep
from services.inference.engine_info.schemas import (
    CpuRead,
    EngineInfoRead,
    EngineSettingsRead,
    LoadedModelRead,
    TuningRead,
)
from shared.auth.identity import AdminUser

router = APIRouter(prefix="/api/v1/admin/engine", tags=["admin"])


def _cpu() -> dict[str, Any]:
    from services.inference.engine.tuning import cpu_features

    return cpu_features().as_dict()


@router.get("", response_model=EngineInfoRead, summary="The engines' measured configuration")
async def engine_info(admin: AdminUser, ctx: InferenceDep) -> EngineInfoRead:
    """The CPU's features, the engine settings, and for each loaded model the configuration it
    runs with and every candidate's decode-step timings measured at load."""
    settings = ctx.settings
    registry = ctx.registry
    cpu = None
    if registry.device == "cpu":
        # /proc/cpuinfo and torch's import: off the event loop
        cpu = CpuRead(**await asyncio.to_thread(_cpu))
    models = []
    for key, stats in registry.stats()["models"].items():
        tuning = stats.get("tuning")
        models.append(
            LoadedModelRead(
                model_key=key,
                device=stats["device"],
                dtype=stats["dtype"],
                threads=stats["cpu_threads"],
                threads_by_rows=stats.get("threads_by_rows"),
                cpu_linear=stats["cpu_linear"],
                batching=stats["batching"],
                tuning=None if not tuning else TuningRead(**tuning),
            )
        )
    return EngineInfoRead(
        device=registry.device,
        cpu=cpu,
        settings=EngineSettingsRead(
            dtype=settings.dtype,
            cpu_threads=settings.cpu_threads,
            cpu_packing=settings.cpu_packing,
            cpu_quantization=settings.cpu_quantization,
            tune_seconds=settings.tune_seconds,
        ),
        models=models,
    )
