# Labelhub — `make run` to try it, `make test` to check it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test install install-dev bench lint typecheck migrate demo clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# `make run` installs what running needs; the test, lint and type-check tools come with `make test`.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $(STAMP)

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP) $(DEV_STAMP)

install: $(STAMP)

install-dev: $(DEV_STAMP)

migrate: install
	$(BIN)/labelhub db upgrade

demo: migrate
	$(BIN)/labelhub demo

run: migrate
	$(BIN)/labelhub demo --print-login
	$(BIN)/labelhub serve

test: install-dev
	$(BIN)/python -m pytest -q -n auto --maxprocesses=4

bench: install-dev
	$(BIN)/python -m benchmarks

lint: install-dev
	$(BIN)/ruff check server client tests benchmarks migrations
	$(BIN)/mypy server client

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
