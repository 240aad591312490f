"""inference: model runtime, OpenAI-compatible API, conversations."""

import os

# Before torch loads OpenMP (libgomp reads these once): its worker threads spin for a short,
# bounded while after a parallel region, then sleep. A decoding step runs hundreds of small
# regions back to back; workers that sleep after each (OMP_WAIT_POLICY=PASSIVE) pay a wake-up
# per region, and workers that spin for libgomp's default ~300,000 turns take the cores the
# event loop streams tokens on (single stream through the gateway on 2 CPUs: 72.8 ms per token
# against 50.5 passive). 2,000 turns of the pause instruction (tens of microseconds) bridge the
# gaps inside a step and end soon after it: the engine alone on the AVX-512 test machine, three
# interleaved runs each, made 18.9 vs 15.1 tok/s at 1 stream and 160 vs 143 at 16 against
# passive. libgomp spins only while its workers fit the CPUs (else it sleeps them at once), so
# the engine loads on a thread that ends (engine.py). An operator's own setting of either wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "2000")
