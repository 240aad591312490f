"""inference: model runtime, OpenAI-compatible API, conversations."""

# OpenMP (torch's intra-op threads on CPU) is left at libgomp's own defaults: its workers spin
# for a while after each parallel region, then sleep. A decoding step runs hundreds of small
# regions back to back with Python between them, and a worker that has gone to sleep pays a
# wake-up at the next one. An earlier override (GOMP_SPINCOUNT=2000, tuned on an AMD EPYC before
# the engine chose its threads per step) made two-thread steps slower than one on a 2-CPU Xeon
# with AMX, where the pause instruction takes longer: the engine alone at one stream made 12.7
# tok/s with it, 20.4 at 10,000 turns, 23.0 at 50,000 and 25.1 at the default 300,000; through
# the gateway, 17.0-17.4 against 18.6-20.9 tok/s at one stream and 192-209 against 229-242 at 16.
# Spinning competes with the event loop that streams the tokens, which is what the engine's
# per-step thread choice measures and answers (engine/threads.py). GOMP_SPINCOUNT and
# OMP_WAIT_POLICY, set by an operator, are libgomp's own and apply as usual.
