# Two commands on a fresh machine: `make demo` (the main job) and `make test` (the whole suite).
# Both build .venv themselves and skip what is already done.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# The team's machines keep an offline CIFAR-10 copy beside the checkout; elsewhere set CBIR_CIFAR10
# or let `cbir` download the official archive.
CBIR_CIFAR10 ?= $(wildcard $(abspath ../shared/datasets/cifar10-jpg.tar.gz))
export CBIR_CIFAR10

.PHONY: demo test lint notebooks venv venv-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Stamp files make the installs idempotent: they rerun only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[dev]"
	touch $(VENV)/.installed $@

venv: $(VENV)/.installed
venv-dev: $(VENV)/.installed-dev

demo: venv
	$(BIN)/cbir config
	$(BIN)/cbir dataset --dataset cifar10

lint: venv-dev
	$(BIN)/ruff check .

test: venv-dev
	$(BIN)/ruff check .
	$(BIN)/pytest

# Re-execute the notebooks in place against the evaluation in $(CBIR_HOME)/runs (default ./var,
# what `make demo` builds); outputs are cleared of machine-specific paths.
notebooks: venv-dev
	CBIR_HOME=$(abspath $(or $(CBIR_HOME),var)) $(BIN)/python notebooks/execute.py --all --in-place

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
