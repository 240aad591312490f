"""Graceful shutdown: what a service does between SIGTERM and its exit.

uvicorn stops listening at SIGTERM and waits for running requests; arq stops taking jobs and
waits `job_completion_wait`. Neither knows that an event stream never ends by itself, nor that
a load balancer should stop sending before the socket closes. So `install` chains a handler in
front of the server's own:

1. SIGTERM: the process is *draining*: /readyz answers 503 at once, while requests are still
   served for SHUTDOWN_DRAIN_SECONDS (the time a load balancer needs to notice);
2. then the server's own handler runs: it stops listening and waits for running requests;
3. open event streams go on until SHUTDOWN_GRACE_SECONDS after that, then end with a final
   `error` event (`shutting_down`: reconnect, resuming with Last-Event-ID); uvicorn's own
   timeout (the launcher passes the grace plus a margin) is only the backstop.

A second SIGTERM skips the waiting. Only SIGTERM (what supervisors and Kubernetes send): Ctrl-C
stays immediate. Installed only in the main thread, where a signal can be handled.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from types import FrameType

logger = logging.getLogger("llmnet.shutdown")

_draining_since: float | None = None
_grace_ends: float | None = None


def draining() -> bool:
    """SIGTERM came: readiness is red, the process is on its way out."""
    return _draining_since is not None


def stream_deadline() -> float | None:
    """When open event streams must end (`time.monotonic()`), once the server has stopped
    listening; None before."""
    return _grace_ends


def install(drain_seconds: float, grace_seconds: float) -> None:
    """Chain the drain in front of the server's own SIGTERM handler (call it from the app's
    startup, after the server installed it)."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous):
        return  # no server handler to chain to (default or ignored): nothing to delay
    loop = asyncio.get_running_loop()

    def stop_serving(sig: int, frame: FrameType | None) -> None:
        global _grace_ends
        _grace_ends = time.monotonic() + grace_seconds
        previous(sig, frame)

    def on_sigterm(sig: int, frame: FrameType | None) -> None:
        global _draining_since
        if _draining_since is not None:  # a second signal: no more waiting
            stop_serving(sig, frame)
            return
        _draining_since = time.monotonic()
        logger.info(
            "SIGTERM: draining for %.0f s, then %.0f s for running work",
            drain_seconds,
            grace_seconds,
        )
        # From a signal handler: handed to the loop the signal-safe way.
        loop.call_soon_threadsafe(loop.call_later, drain_seconds, stop_serving, sig, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
