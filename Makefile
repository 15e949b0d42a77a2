# One task runner for people and CI. `make run` and `make check` are the README's two commands.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run check lint types test bench golden clean

$(BIN)/publisher: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(BIN)/publisher

## run: set up, then build the sample site and send due newsletters to the outbox (SQLite)
# The demo reader (example.com is reserved, RFC 2606) makes the outbox show what subscribers get.
run: $(BIN)/publisher
	$(BIN)/publisher subscribers add reader@example.com
	$(BIN)/publisher run --once
	@echo "Blog: public/index.html   Mail: outbox/*.eml   Preview: $(BIN)/publisher serve"

## check: lint, format check, types and the whole test suite (what CI runs)
check: lint types test

lint: $(BIN)/publisher
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

types: $(BIN)/publisher
	$(BIN)/mypy

test: $(BIN)/publisher
	$(BIN)/pytest

## bench: speed benchmarks, printed as ratios against a baseline from the same run
bench: $(BIN)/publisher
	$(BIN)/python bench/bench_build.py

clean:
	rm -rf public outbox publisher.db publisher.db-* .pytest_cache .mypy_cache .ruff_cache

## golden: refresh tests/golden/ after an intended output change (review the diff!)
golden: $(BIN)/publisher
	PUBLISHER_UPDATE_GOLDEN=1 $(BIN)/pytest -q tests/test_golden.py
	git status --short tests/golden
