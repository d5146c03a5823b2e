# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/keel demo --chaos --seed 8

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	KEEL_STRICT=1 $(BIN)/python -m pytest

# The LangChain run first: it measures differences of a millisecond, and the benches that
# write to PostgreSQL leave its background work (checkpoints, autovacuum) on the CPUs.
bench: $(STAMP)
	$(BIN)/python bench/langchain_overhead.py
	$(BIN)/python bench/run.py
	$(BIN)/python bench/tracing_sampling.py
	$(BIN)/python bench/rollback_history.py
	$(BIN)/python bench/dashboard.py

clean:
	rm -rf $(VENV) .keel build dist *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
