"""Requests on their way to an engine: accepted by this process, not yet submitted to one.

A request spends tens to hundreds of milliseconds between arriving and reaching its engine
(the model's access check, the quota, the conversation's history, the prompt). When several
arrive together (clients whose previous answers ended on the same step), the first to reach an
idle engine would be prefilled alone, and the rest, arriving during that pass, would wait for
it to end. A scheduler that knows more requests are on their way holds its queue briefly so
they share one pass (see `Scheduler._hold_s`).

The count is per process, not per model: it is known at arrival, before the model is.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator


class Arrival:
    """One request being prepared; `done` once it is submitted (or will never be)."""

    def __init__(self, arrivals: Arrivals) -> None:
        self._arrivals = arrivals
        self._pending = True

    def done(self) -> None:
        if self._pending:
            self._pending = False
            self._arrivals._settle()


class Arrivals:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._listeners: list[Callable[[], None]] = []

    @property
    def pending(self) -> int:
        return self._count

    @contextlib.contextmanager
    def expecting(self) -> Iterator[Arrival]:
        """A request being prepared for the duration of the block, or until `Arrival.done`."""
        with self._lock:
            self._count += 1
        arrival = Arrival(self)
        try:
            yield arrival
        finally:
            arrival.done()

    def listen(self, callback: Callable[[], None]) -> None:
        """Call `callback` (from any thread) whenever a pending request settles."""
        with self._lock:
            self._listeners.append(callback)

    def unlisten(self, callback: Callable[[], None]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    def _settle(self) -> None:
        with self._lock:
            self._count -= 1
            listeners = list(self._listeners)
        for listener in listeners:
            listener()
