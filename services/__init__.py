"""llmnet services: each folder is one FastAPI app with its own data."""
