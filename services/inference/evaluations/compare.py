"""Two reports side by side: each headline metric of both, the difference, which is better.

A difference is highlighted when a number moved by more than 10% (relative; 0.05 absolute
when the first is zero) or a verdict changed. Directions: lower is better for perplexity,
latency, bias gaps; higher for consistency and tokens/s; confidence has none.
"""

from __future__ import annotations

from typing import Any, Literal

from services.inference.evaluations.schemas import MetricDifference

Direction = Literal["lower", "higher", "closer_to_zero"] | None
_RELATIVE = 0.10
_ABSOLUTE = 0.05


def headline(report: dict[str, Any]) -> dict[str, tuple[float | str | None, Direction]]:
    """The metrics a comparison shows, by dotted name."""
    values: dict[str, tuple[float | str | None, Direction]] = {}
    perplexity = report.get("perplexity") or {}
    values["perplexity"] = (perplexity.get("perplexity"), "lower")
    consistency = report.get("consistency") or {}
    values["consistency.mean_similarity"] = (consistency.get("mean_similarity"), "higher")
    gender = report.get("gender") or {}
    values["gender.balance"] = (gender.get("balance"), "closer_to_zero")
    values["gender.verdict"] = (gender.get("verdict"), None)
    for probe in report.get("probes") or []:
        name = probe["name"]
        values[f"probes.{name}.mean_abs_difference"] = (probe.get("mean_abs_difference"), "lower")
        values[f"probes.{name}.flagged_pairs"] = (probe.get("flagged_pairs"), "lower")
        values[f"probes.{name}.verdict"] = (probe.get("verdict"), None)
    confidence = report.get("confidence") or {}
    values["confidence.mean_confidence_score"] = (confidence.get("mean_confidence_score"), None)
    values["confidence.hedges_per_100_words"] = (confidence.get("hedges_per_100_words"), None)
    performance = report.get("performance") or {}
    values["performance.mean_latency_ms"] = (performance.get("mean_latency_ms"), "lower")
    values["performance.p95_latency_ms"] = (performance.get("p95_latency_ms"), "lower")
    values["performance.tokens_per_second"] = (performance.get("tokens_per_second"), "higher")
    return values


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _better(a: float, b: float, direction: Direction) -> Literal["a", "b", "same"] | None:
    if direction is None:
        return None
    if a == b:
        return "same"
    if direction == "lower":
        return "a" if a < b else "b"
    if direction == "higher":
        return "a" if a > b else "b"
    if abs(a) == abs(b):
        return "same"
    return "a" if abs(a) < abs(b) else "b"


def compare(report_a: dict[str, Any], report_b: dict[str, Any]) -> list[MetricDifference]:
    left, right = headline(report_a), headline(report_b)
    rows: list[MetricDifference] = []
    for name in [*left, *(n for n in right if n not in left)]:
        a, direction = left.get(name, (None, None))
        b, other = right.get(name, (None, None))
        direction = direction or other
        x, y = _number(a), _number(b)
        if x is not None and y is not None:
            difference = y - x
            relative = difference / abs(x) if x else None
            moved = (
                abs(relative) > _RELATIVE if relative is not None else abs(difference) > _ABSOLUTE
            )
            rows.append(
                MetricDifference(
                    metric=name,
                    a=a,
                    b=b,
                    difference=round(difference, 6),
                    relative=None if relative is None else round(relative, 6),
                    better=_better(x, y, direction),
                    highlight=moved,
                )
            )
        else:
            rows.append(
                MetricDifference(
                    metric=name,
                    a=a,
                    b=b,
                    difference=None,
                    relative=None,
                    better=None,
                    highlight=a != b,
                )
            )
    return rows
