"""inference: model runtime, OpenAI-compatible API, conversations."""
