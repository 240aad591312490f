"""An evaluation as a download: JSON (the whole evaluation) or CSV (its metrics, or answers).

The metrics CSV is long-format — `section,item,metric,value`, one number per row — so any
spreadsheet or `csv.DictReader` can pivot it; the answers CSV has one row per answer.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

METRIC_COLUMNS = ["section", "item", "metric", "value"]
RESPONSE_COLUMNS = [
    "set",
    "set_version",
    "kind",
    "prompt_id",
    "variant",
    "repeat",
    "prompt",
    "text",
    "finish_reason",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "tokens_per_second",
    "male_terms",
    "female_terms",
    "valence",
    "hedges",
    "certainty_markers",
    "words",
    "confidence_score",
]
_SCALARS = (int, float, str, bool)


def _scalars(section: str, item: str, values: dict[str, Any]) -> Iterator[list[Any]]:
    for key, value in values.items():
        if value is None or isinstance(value, _SCALARS):
            yield [section, item, key, "" if value is None else value]


def metric_rows(report: dict[str, Any]) -> Iterator[list[Any]]:
    for section in ("perplexity", "consistency", "gender", "confidence", "performance"):
        values = report.get(section) or {}
        yield from _scalars(section, "", values)
        for entry in values.get("per_prompt") or []:
            yield from _scalars(section, f"{entry['set']}/{entry['prompt_id']}", entry)
    for probe in report.get("probes") or []:
        section = f"probes.{probe['name']}"
        yield from _scalars(section, "", probe)
        for pair in probe["pairs"]:
            yield from _scalars(section, f"{pair['set']}/{pair['pair_id']}", pair)


def to_csv(report: dict[str, Any], table: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if table == "responses":
        writer.writerow(RESPONSE_COLUMNS)
        for response in report.get("responses") or []:
            writer.writerow(
                ["" if response.get(c) is None else response.get(c) for c in RESPONSE_COLUMNS]
            )
    else:
        writer.writerow(METRIC_COLUMNS)
        writer.writerows(metric_rows(report))
    return buffer.getvalue()
