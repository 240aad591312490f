"""The long-lived heap, kept out of the cyclic garbage collector's scans.

A service's heap after startup (FastAPI, SQLAlchemy, pydantic models; in the inference service
also transformers and each loaded model) is hundreds of thousands of objects that live as long
as the process. Every full collection walks all of them: about 170 ms in the inference process,
with the GIL held, so the event loop and the engine's thread both stop. Requests leave enough
survivors to trigger one every few hundred requests, a stall that lands at random in someone's
time to first token. Frozen (`gc.freeze`), those objects are skipped by every collection;
objects made later are collected as before.

`settle` freezes what is alive now (after startup, after a model load; it costs nothing);
`release` unfreezes and collects everything, for when long-lived objects were let go (a model
unloaded), so that their cycles are freed; `thaw` hands everything back at shutdown.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Everything alive now is long-lived: no collection scans it from here on."""
    gc.freeze()


def release() -> None:
    """Collect everything, frozen or not (long-lived objects were let go), then freeze again
    what is still alive."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def thaw() -> None:
    gc.unfreeze()
