# Labelhub — `make run` to try it, `make test` to check it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install bench lint typecheck migrate demo clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/labelhub db upgrade

demo: migrate
	$(BIN)/labelhub demo

run: migrate
	$(BIN)/labelhub demo --print-login
	$(BIN)/labelhub serve

test: install
	$(BIN)/python -m pytest -q -n auto --maxprocesses=4

bench: install
	$(BIN)/python -m benchmarks

lint: install
	$(BIN)/ruff check server client tests benchmarks migrations
	$(BIN)/mypy server client

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
