"""Inference metrics: time to first token, inter-token latency, tokens, queue, batch, memory,
and each loaded model's measured configuration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, Info

TIME_TO_FIRST_TOKEN = Histogram(
    "llmnet_inference_time_to_first_token_seconds",
    "From request received to the first generated token.",
    ["source"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
)
INTER_TOKEN_LATENCY = Histogram(
    "llmnet_inference_inter_token_latency_seconds",
    "Between consecutive generated tokens of one request.",
    ["source"],
    buckets=(0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56),
)
TOKENS_GENERATED = Counter(
    "llmnet_inference_tokens_generated_total", "Completion tokens produced.", ["source"]
)
REQUESTS = Counter(
    "llmnet_inference_requests_total", "Completions by how they ended.", ["source", "status"]
)
QUEUE_DEPTH = Gauge("llmnet_inference_queue_depth", "Requests waiting for a batch slot.")
BATCH_SIZE = Gauge("llmnet_inference_batch_size", "Requests in the running batches.")
LOADED_MODELS = Gauge("llmnet_inference_loaded_models", "Models with weights in memory.")
MEMORY_BYTES = Gauge("llmnet_inference_model_memory_bytes", "Bytes of loaded weights.")

# -- how each loaded model runs, as measured at load (engine/tuning.py) ---------------------------
ENGINE_CONFIG = Gauge(
    "llmnet_inference_engine_config",
    "The configuration each loaded model is served with (value 1), and where each choice came "
    "from: tuned (measured at load), pinned (a setting) or default.",
    [
        "model",
        "device",
        "dtype",
        "threads",
        "packing",
        "dtype_source",
        "threads_source",
        "packing_source",
    ],
)
TUNING_STEP_SECONDS = Gauge(
    "llmnet_inference_tuning_step_seconds",
    "Decode step time measured at load for each candidate configuration, by batch size.",
    ["model", "dtype", "packing", "threads", "batch"],
)
TUNING_PREFILL_SECONDS = Gauge(
    "llmnet_inference_tuning_prefill_seconds",
    "Prefill time of one 128-token prompt measured at load for each candidate configuration.",
    ["model", "dtype", "packing", "threads"],
)
STEP_THREADS = Gauge(
    "llmnet_inference_step_threads",
    "Threads a measured engine's decoding steps run with, per band of batch rows (chosen by "
    "timing its own steps as it serves).",
    ["model", "rows"],
)
TUNING_SECONDS = Gauge(
    "llmnet_inference_tuning_seconds", "Load time spent choosing the configuration.", ["model"]
)
# Label values stay free of spaces (the model name is in GET /api/v1/admin/engine).
CPU = Info(
    "llmnet_inference_cpu",
    "The CPU features the engines were tuned with: flags that matter, torch's kernel level.",
)


def _linear(trial: Mapping[str, Any]) -> str:
    """How a trial held its linear layers, as the engine's `cpu_linear` names it."""
    if trial.get("quantized"):
        return "int8"
    return "onednn" if trial["packing"] else "dense"


def export_engine_configs(models: Mapping[str, Mapping[str, Any]]) -> None:
    """Export the loaded engines' configurations and tuning timings (`ModelRegistry.stats()`'s
    "models"); models no longer loaded leave the gauges."""
    ENGINE_CONFIG.clear()
    STEP_THREADS.clear()
    TUNING_STEP_SECONDS.clear()
    TUNING_PREFILL_SECONDS.clear()
    TUNING_SECONDS.clear()
    for key, stats in models.items():
        tuning = stats.get("tuning") or {}
        sources = tuning.get("sources") or {}
        ENGINE_CONFIG.labels(
            model=key,
            device=str(stats.get("device", "")),
            dtype=str(stats.get("dtype", "")),
            threads=str(stats.get("cpu_threads") or ""),
            packing=str(stats.get("cpu_linear", "")),
            dtype_source=sources.get("dtype", "default"),
            threads_source=sources.get("threads", "default"),
            packing_source=sources.get("packing", "default"),
        ).set(1)
        for rows, band in (stats.get("threads_by_rows") or {}).items():
            if band.get("threads") is not None:
                STEP_THREADS.labels(model=key, rows=rows).set(band["threads"])
        if not tuning:
            continue
        TUNING_SECONDS.labels(model=key).set(float(tuning.get("seconds", 0.0)))
        for trial in tuning.get("trials", []):
            if trial.get("status") != "measured":
                continue
            for batch, value in (
                (1, trial["step_ms_1"]),
                (tuning["batch"], trial["step_ms_batch"]),
            ):
                TUNING_STEP_SECONDS.labels(
                    model=key,
                    dtype=trial["dtype"],
                    packing=_linear(trial),
                    threads=str(trial["threads"] or ""),
                    batch=str(batch),
                ).set(value / 1000)
            if trial.get("prefill_ms") is not None:
                TUNING_PREFILL_SECONDS.labels(
                    model=key,
                    dtype=trial["dtype"],
                    packing=_linear(trial),
                    threads=str(trial["threads"] or ""),
                ).set(trial["prefill_ms"] / 1000)
        cpu = tuning.get("cpu")
        if cpu:
            CPU.info(
                {
                    "native_bf16": str(cpu["native_bf16"]).lower(),
                    "flags": ",".join(cpu["flags"]),  # no spaces: one token per sample line
                    "capability": str(cpu["capability"]),
                    "cpus": str(cpu["cpus"]),
                }
            )
