"""inference: model runtime, OpenAI-compatible API, conversations."""

import os

# Before torch loads OpenMP (it reads this once): its worker threads sleep as soon as a parallel
# region ends instead of spinning for the next one. The event loop that streams the tokens
# shares the cores with them; spinning workers took those cores from it, and every token then
# waited on both (single stream through the gateway on 2 CPUs: 72.8 -> 50.5 ms per token; the
# engine alone is as fast either way). An operator's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
