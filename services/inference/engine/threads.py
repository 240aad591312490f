"""Intra-op threads for each decoding step, chosen from the engine's own steps as it serves.

The load-time tuner (tuning.py) times steps with the machine to itself. Serving, the engine
shares the CPUs with the event loop that streams its tokens (and, on a small machine, with the
gateway): on 2 CPUs a lone stream made 18.7 tok/s through the gateway with one thread and 15.7
with two, although two were ~15% faster alone; at 16 streams two threads won. Which count wins
depends on the rows of the step and on what else runs, so it is measured where it happens.

A step's time is the engine loop's whole turn, from one decoding step to the next (sampling
and handing the tokens to the event loop included, where the two compete for the CPUs and the
GIL); turns with a prefill in them are not counted. Steps are grouped by their rows into bands
(1, 2-3, 4-7, 8-15, ...). In each band the candidate counts (the tuned count and one less) take
turns for `TRIES` steps each (in turns, so both see the same moment: the first steps after a
load or a prefill are slower), then the band runs the tuned count unless another one's steps
were faster by more than `MARGIN` (step times on a busy machine wander by a few percent; the
tuned count was measured best with the machine to itself). Each count's time is the median of
its tries, then a moving average; the counts not chosen are tried again for one step every
`RECHECK_STEPS` steps of the band, so a change in load (more clients, a neighbour) is
followed. Switching the count costs no measurable time (`torch.set_num_threads` between steps).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

__all__ = ["MARGIN", "RECHECK_STEPS", "TRIES", "ThreadChooser", "band_label"]

#: Steps timed at each count in a band before the band chooses.
TRIES = 3
#: Steps of a band between single-step retries of the counts it did not choose.
RECHECK_STEPS = 128
#: Weight of a new step time in a count's moving average (after its first `TRIES`).
WEIGHT = 0.2
#: How much faster than the tuned count another count's steps must be to be chosen instead.
MARGIN = 0.05


def _band(rows: int) -> int:
    return max(1, rows).bit_length()


def band_label(band: int) -> str:
    low, high = 1 << (band - 1), (1 << band) - 1
    return str(low) if low == high else f"{low}-{high}"


class ThreadChooser:
    """Which of `counts` each decoding step runs with (`preferred`, the tuned count, on a near
    tie); `record` each step's measured seconds. Used from the engine's thread only (`chosen`
    from any)."""

    def __init__(self, counts: Sequence[int], preferred: int) -> None:
        self.counts = tuple(sorted({c for c in counts if c >= 1} | {preferred}))
        self.preferred = preferred
        self._mean: dict[tuple[int, int], float] = {}
        self._tries: dict[tuple[int, int], list[float]] = {}  # the first TRIES step times
        self._steps: dict[int, int] = {}

    def pick(self, rows: int) -> int:
        band = _band(rows)
        fewest = min(self.counts, key=lambda c: self._tried(self._tries, band, c))
        if self._tried(self._tries, band, fewest) < TRIES:
            return fewest  # trying, in turns
        steps = self._steps.get(band, 0) + 1
        self._steps[band] = steps
        best = self._best(band)
        if steps % RECHECK_STEPS == 0:
            others = [c for c in self.counts if c != best]
            if others:
                return others[(steps // RECHECK_STEPS) % len(others)]
        return best

    def record(self, rows: int, count: int, seconds: float) -> None:
        key = (_band(rows), count)
        tries = self._tries.setdefault(key, [])
        if len(tries) < TRIES:
            tries.append(seconds)
            self._mean[key] = statistics.median(tries)
        else:
            self._mean[key] += WEIGHT * (seconds - self._mean[key])

    @staticmethod
    def _tried(tries: dict[tuple[int, int], list[float]], band: int, count: int) -> int:
        return len(tries.get((band, count), ()))

    def _best(self, band: int, mean: dict[tuple[int, int], float] | None = None) -> int:
        mean = self._mean if mean is None else mean
        fastest = min(self.counts, key=lambda c: mean.get((band, c), float("inf")))
        preferred = mean.get((band, self.preferred))
        if preferred is None or mean[(band, fastest)] < preferred * (1 - MARGIN):
            return fastest
        return self.preferred

    def chosen(self) -> dict[str, dict[str, object]]:
        """Per band measured so far: the count it runs with and each count's mean step (ms)."""
        # Copies first: this is read from other threads while the engine's thread records.
        tries, mean = dict(self._tries), dict(self._mean)
        report: dict[str, dict[str, object]] = {}
        for band in sorted({b for b, _ in tries}):
            settled = all(self._tried(tries, band, c) >= TRIES for c in self.counts)
            report[band_label(band)] = {
                "threads": self._best(band, mean) if settled else None,
                "step_ms": {
                    str(c): round(mean[(band, c)] * 1000, 2)
                    for c in self.counts
                    if (band, c) in mean
                },
            }
        return report
