"""The inference worker's arq queue, named once for the worker and the code that enqueues."""

INFERENCE_QUEUE = "llmnet:inference"
