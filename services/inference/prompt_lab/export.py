"""An A/B run as a download: JSON (the run, its summary and every output) or CSV (one row per
output, its metrics as columns)."""

from __future__ import annotations

import csv
import io

from services.inference.prompt_lab.schemas import ABRunRead

_BASE = ["model", "arm", "sample", "prompt_tokens", "completion_tokens", "latency_ms", "text"]


def to_csv(run: ABRunRead) -> str:
    metric_names = sorted({name for o in run.outputs for name in o.metrics} - set(_BASE))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*_BASE, *metric_names])
    for o in run.outputs:
        writer.writerow(
            [
                o.model,
                str(o.arm),
                o.sample,
                o.prompt_tokens,
                o.completion_tokens,
                o.latency_ms,
                o.text,
                *(o.metrics.get(name, "") for name in metric_names),
            ]
        )
    return buffer.getvalue()
