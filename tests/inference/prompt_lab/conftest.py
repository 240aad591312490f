"""Prompt-lab fixtures: the worker ctx and job runner of the evaluation tests."""

from tests.inference.evaluations.conftest import worker_ctx  # noqa: F401  (fixture)
