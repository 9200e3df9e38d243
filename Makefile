# digest — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint format bench bench-large i18n i18n-new clean help

help:
	@echo "make demo   - install into .venv and run the weekly job on the bundled sample"
	@echo "make test   - install into .venv and run the whole test suite"
	@echo "make lint   - ruff check, ruff format --check, mypy"
	@echo "make bench  - side-by-side speed and memory figures (bench/results.json)"
	@echo "make i18n   - re-extract the templates' interface words, update and compile the catalogues"
	@echo "make i18n-new LOCALE=sk - start a catalogue for a new language"

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

# Interface words (templates/README.md, "Translations"): babel.cfg says what is read.
LOCALES := digest/templating/locale
i18n: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k translate --add-location=file --sort-output \
	  --project=digest --copyright-holder="digest contributors" -o $(LOCALES)/messages.pot .
	$(BIN)/pybabel update -i $(LOCALES)/messages.pot -d $(LOCALES) --no-fuzzy-matching \
	  --ignore-obsolete
	$(BIN)/pybabel compile -d $(LOCALES) --statistics

i18n-new: $(STAMP)
	@test -n "$(LOCALE)" || { echo "usage: make i18n-new LOCALE=sk"; exit 2; }
	$(BIN)/pybabel init -i $(LOCALES)/messages.pot -d $(LOCALES) -l $(LOCALE)

clean:
	rm -rf demo .pytest_cache .mypy_cache .ruff_cache
