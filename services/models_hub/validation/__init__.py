"""Upload validation: prove an uploaded model loads and generates, in a sandboxed child process.

`runner.run_sandbox` (used by the arq job) starts `sandbox` (the child program) under resource
limits, with no credentials and no network. This package file imports nothing so the child starts
fast.
"""
