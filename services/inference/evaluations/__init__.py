"""Evaluation reports: a job that runs a model through the inference API and measures it."""
