"""Inference metrics: time to first token, inter-token latency, tokens, queue, batch, memory."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TIME_TO_FIRST_TOKEN = Histogram(
    "llmnet_inference_time_to_first_token_seconds",
    "From request received to the first generated token.",
    ["source"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
)
INTER_TOKEN_LATENCY = Histogram(
    "llmnet_inference_inter_token_latency_seconds",
    "Between consecutive generated tokens of one request.",
    ["source"],
    buckets=(0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56),
)
TOKENS_GENERATED = Counter(
    "llmnet_inference_tokens_generated_total", "Completion tokens produced.", ["source"]
)
REQUESTS = Counter(
    "llmnet_inference_requests_total", "Completions by how they ended.", ["source", "status"]
)
QUEUE_DEPTH = Gauge("llmnet_inference_queue_depth", "Requests waiting for a batch slot.")
BATCH_SIZE = Gauge("llmnet_inference_batch_size", "Requests in the running batches.")
LOADED_MODELS = Gauge("llmnet_inference_loaded_models", "Models with weights in memory.")
MEMORY_BYTES = Gauge("llmnet_inference_model_memory_bytes", "Bytes of loaded weights.")
