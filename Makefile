# Two commands set up everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup demo test lab bench labext clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup-system.sh
	@bash scripts/setup-system.sh
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ProML Lab needs Python >= 3.11; set PYTHON=python3.11 (or newer)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	set -o pipefail; $(BIN)/python -m pip install --quiet --upgrade pip 2>&1 | { grep -v '^WARNING: Location' || true; }
	set -o pipefail; $(BIN)/python -m pip install --quiet -e '.[dev,deep]' 2>&1 | { grep -v '^WARNING: Location' || true; }
	@# the prebuilt lab extension, linked into the environment (an editable install does not copy it)
	@mkdir -p $(VENV)/share/jupyter/labextensions
	@ln -sfn $(CURDIR)/proml_lab/labextension $(VENV)/share/jupyter/labextensions/jupyterlab-proml
	@$(BIN)/python -c 'import proml_lab, pyspark, pandas' # fail here if the install did not complete
	@touch $@

demo: setup
	$(BIN)/proml demo

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lab: setup
	$(BIN)/proml lab

$(VENV)/.installed-bench: $(STAMP)
	set -o pipefail; $(BIN)/python -m pip install --quiet -e '.[dev,deep,bench]' 2>&1 | { grep -v '^WARNING: Location' || true; }
	@touch $@

bench: $(VENV)/.installed-bench
	FEAST_USAGE=False $(BIN)/python bench/run.py

# The lab extension is committed prebuilt (proml_lab/labextension); rebuild it after changing its
# TypeScript (Node 20 + the npm registry; ~3 min cold, ~25 s with a warm cache).
LABEXT_SRC := extensions/jupyterlab-proml
labext: setup
	cd $(LABEXT_SRC) && PATH="$(CURDIR)/$(BIN):$$PATH" jlpm install --immutable
	cd $(LABEXT_SRC) && PATH="$(CURDIR)/$(BIN):$$PATH" jlpm build:prod
	$(BIN)/python -m pip install --quiet --no-deps -e .

clean:
	rm -rf $(VENV) .proml .pytest_cache build dist $(LABEXT_SRC)/node_modules $(LABEXT_SRC)/lib $(LABEXT_SRC)/.yarn
