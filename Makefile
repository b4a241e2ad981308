# Two commands on a fresh machine: `make demo` (the main job) and `make test` (the whole suite).
# Both build .venv themselves and skip what is already done.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# The team's machines keep an offline CIFAR-10 copy beside the checkout; elsewhere set CBIR_CIFAR10
# or let `cbir` download the official archive.
CBIR_CIFAR10 ?= $(wildcard $(abspath ../shared/datasets/cifar10-jpg.tar.gz))
export CBIR_CIFAR10

# `make demo CBIR=cbir` uses a `cbir` already on PATH (e.g. a conda env) and builds no .venv.
CBIR ?= $(BIN)/cbir
DEMO_VENV := $(if $(filter $(BIN)/cbir,$(CBIR)),venv)
# `make demo SERVE=0` stops after the comparison table (for timing, or on a headless machine).
SERVE ?= 1

.PHONY: demo demo-table test lint notebooks venv venv-dev clean

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

# The main job on the embedded store. Every step skips what is already built, so a second
# `make demo` goes straight to the table (the model, the index and the evaluation are reused).
demo: demo-table
ifneq ($(SERVE),0)
	@echo "serving the search page; stop it with Ctrl-C"
	$(CBIR) serve
endif

demo-table: $(DEMO_VENV)
	$(CBIR) config
	$(CBIR) dataset --dataset cifar10
	$(CBIR) train bovw --dataset cifar10
	$(CBIR) index --dataset cifar10 --method bovw,cnn
	@# Fusion weights and query expansion chosen on the CNN's validation images (train split); without its
	@# validation.json this fails with the reason and evaluate falls back to RRF 1:1 (and says so).
	-$(CBIR) tune-fusion
	$(CBIR) evaluate --dataset cifar10 --method bovw,cnn,fusion,cnn+qe -k 100

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
