"""The engine-info report as admins read it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class CpuRead(BaseModel):
    model: str = Field(description="The CPU's model name (/proc/cpuinfo).")
    flags: list[str] = Field(description="The flags that matter for inference that it has.")
    capability: str = Field(description="torch's CPU kernel level (e.g. AVX2, AVX512).")
    cpus: int = Field(description="CPUs this process may use.")
    native_bf16: bool = Field(description="bfloat16 runs in hardware (AMX or AVX-512 BF16).")


class TrialRead(BaseModel):
    dtype: str
    packing: bool = Field(description="oneDNN-packed linear layers.")
    quantized: bool = Field(description="int8 linear weights.")
    threads: int | None = Field(description="Intra-op threads (null on GPU).")
    status: Literal["measured", "rejected", "skipped", "failed"]
    step_ms_1: float | None = Field(description="Decode step at batch 1, milliseconds.")
    step_ms_batch: float | None = Field(description="Decode step at the tuning batch size.")
    prefill_ms: float | None = Field(description="Prefill of one 128-token prompt, milliseconds.")
    detail: str = Field(description="Why it was rejected, skipped or failed.")


class TuningRead(BaseModel):
    seconds: float = Field(description="Load time the measurement took.")
    batch: int = Field(description="The larger batch size timed (besides 1).")
    sources: dict[str, str] = Field(
        description="Where each choice came from: tuned (measured) or pinned (a setting)."
    )
    trials: list[TrialRead]


class ThreadsByRowsRead(BaseModel):
    threads: int | None
    step_ms: dict[str, float] = Field(description="Average step time (ms) by thread count.")


class LoadedModelRead(BaseModel):
    model_key: str = Field(description="The loaded model version's id.")
    device: str
    dtype: str
    threads: int | None = Field(description="Intra-op threads of its engine (null on GPU).")
    threads_by_rows: dict[str, ThreadsByRowsRead] | None = Field(
        default=None,
        description="Measured threads, chosen again per decoding step as it serves: for each "
        'band of batch rows seen so far ("1", "2-3", "4-7", ...), the count it runs '
        "with (null while still trying each) and each count's average step time; null when "
        "the thread count is pinned or on GPU.",
    )
    cpu_linear: str = Field(description="onednn (packed linear layers), int8 or dense.")
    batching: str
    tuning: TuningRead | None = Field(description="The load-time measurement; null: none ran.")


class EngineSettingsRead(BaseModel):
    dtype: str | None = Field(description="INFERENCE_DTYPE (null: measured).")
    cpu_threads: int | None = Field(description="INFERENCE_CPU_THREADS (null: measured).")
    cpu_packing: str = Field(description="INFERENCE_CPU_PACKING (auto: measured).")
    cpu_quantization: str = Field(description="INFERENCE_CPU_QUANTIZATION (auto: measured).")
    tune_seconds: float = Field(description="INFERENCE_TUNE_SECONDS (0: no measurement).")


class EngineInfoRead(BaseModel):
    device: str
    cpu: CpuRead | None = Field(description="This machine's CPU (null on GPU).")
    settings: EngineSettingsRead
    models: list[LoadedModelRead] = Field(description="Loaded models, least recently used first.")
