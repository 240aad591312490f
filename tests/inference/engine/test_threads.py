"""The per-step thread choice: each band of batch rows tries every count in turns, then runs the
fastest (the tuned count on a near tie), and tries the others again now and then."""

from __future__ import annotations

from collections.abc import Callable

from services.inference.engine.threads import MARGIN, RECHECK_STEPS, TRIES, ThreadChooser


def run_steps(
    chooser: ThreadChooser, rows: int, steps: int, ms: Callable[[int, int], float]
) -> list[int]:
    """`steps` decoding steps of `rows` rows, step i at count c taking `ms(c, i)`; the counts
    used."""
    used = []
    for step in range(steps):
        count = chooser.pick(rows)
        chooser.record(rows, count, ms(count, step) / 1000)
        used.append(count)
    return used


def fixed(times: dict[int, float]) -> Callable[[int, int], float]:
    return lambda count, _: times[count]


def test_counts_are_tried_in_turns_then_the_fastest_runs() -> None:
    chooser = ThreadChooser([1, 2], preferred=2)
    used = run_steps(chooser, 1, 2 * TRIES + 20, fixed({1: 50.0, 2: 65.0}))
    assert used[: 2 * TRIES] == [1, 2] * TRIES
    assert set(used[2 * TRIES :]) == {1}
    assert chooser.chosen() == {"1": {"threads": 1, "step_ms": {"1": 50.0, "2": 65.0}}}


def test_a_near_tie_keeps_the_tuned_count() -> None:
    chooser = ThreadChooser([1, 2], preferred=2)
    close = 65.0 * (1 - MARGIN / 2)
    used = run_steps(chooser, 32, 2 * TRIES + 20, fixed({1: close, 2: 65.0}))
    assert set(used[2 * TRIES :]) == {2}
    assert chooser.chosen()["32-63"]["threads"] == 2


def test_a_slow_first_step_does_not_decide() -> None:
    # The first step after a load or a prefill is slow, whichever count it runs with.
    chooser = ThreadChooser([1, 2], preferred=2)
    used = run_steps(
        chooser, 1, 2 * TRIES + 5, lambda count, step: 500.0 if step == 0 else count * 30.0
    )
    assert set(used[2 * TRIES :]) == {1}
    assert chooser.chosen()["1"]["step_ms"] == {"1": 30.0, "2": 60.0}


def test_bands_of_rows_choose_apart() -> None:
    chooser = ThreadChooser([1, 2], preferred=2)
    run_steps(chooser, 1, 2 * TRIES, fixed({1: 50.0, 2: 65.0}))
    # 16 to 31 rows are one band: measured at 16, chosen at 20
    run_steps(chooser, 16, 2 * TRIES, fixed({1: 120.0, 2: 80.0}))
    assert chooser.pick(1) == 1
    assert chooser.pick(20) == 2
    chosen = chooser.chosen()
    assert chosen["1"]["threads"] == 1
    assert chosen["16-31"]["threads"] == 2
    assert set(chosen) == {"1", "16-31"}


def test_a_band_still_trying_reports_no_choice() -> None:
    chooser = ThreadChooser([1, 2], preferred=2)
    run_steps(chooser, 4, 3, fixed({1: 50.0, 2: 40.0}))
    assert chooser.chosen() == {"4-7": {"threads": None, "step_ms": {"1": 50.0, "2": 40.0}}}


def test_a_change_in_load_is_followed() -> None:
    # One thread wins at first; then two get faster (say the event loop went quiet): the
    # periodic retries see it and the band switches.
    chooser = ThreadChooser([1, 2], preferred=2)
    run_steps(chooser, 1, 2 * TRIES + 10, fixed({1: 50.0, 2: 65.0}))
    used = run_steps(chooser, 1, RECHECK_STEPS * 12, fixed({1: 50.0, 2: 30.0}))
    assert used[-1] == 2
    assert chooser.chosen()["1"]["threads"] == 2
    # until then, the retries were single steps among many
    assert used.index(2) >= RECHECK_STEPS - 10 - 1


def test_a_single_count_always_runs() -> None:
    chooser = ThreadChooser([], preferred=3)
    assert set(run_steps(chooser, 8, 50, fixed({3: 10.0}))) == {3}
