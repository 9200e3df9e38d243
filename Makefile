# digest — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint format bench bench-large clean help

help:
	@echo "make demo   - install into .venv and run the weekly job on the bundled sample"
	@echo "make test   - install into .venv and run the whole test suite"
	@echo "make lint   - ruff check, ruff format --check, mypy"
	@echo "make bench  - side-by-side speed and memory figures (bench/results.json)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	@DIGEST_DATABASE_URL=$${DIGEST_DATABASE_URL:-sqlite:///demo/digest.db} \
	 DIGEST_OUTBOX_DIR=$${DIGEST_OUTBOX_DIR:-demo/outbox} \
	 $(BIN)/python -m digest.demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench

bench-large: $(STAMP)
	$(BIN)/python -m bench --large

clean:
	rm -rf demo .pytest_cache .mypy_cache .ruff_cache
