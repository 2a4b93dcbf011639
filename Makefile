# The two set-up commands of the README: `make demo` and `make test`.
# Both call `make install`, which needs only Python 3.11, Node/npm and (for browser tests) apt.
# `make check` runs ruff (lint and format) and mypy (configured in pyproject.toml); CI runs it first.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --constraint constraints.txt
STAMP := $(VENV)/.installed

.PHONY: install demo hub-demo check test bench widget clean

install: $(STAMP) widgets/static/papaya_widget.js

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --quiet --upgrade pip
	$(PIP) --quiet -e '.[test]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (imaging-lab)" > /dev/null
	touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

widgets/static/papaya_widget.js: node_modules/.package-lock.json $(wildcard widgets/js/*)
	npm run --silent build

widget: widgets/static/papaya_widget.js

demo: install
	$(BIN)/imaging-lab demo

check: install
	$(BIN)/ruff check imaging_lib widgets tests bench
	$(BIN)/ruff format --check imaging_lib widgets tests bench
	$(BIN)/mypy

# The team setup on this machine: JupyterHub, the dashboards as a Hub service, a Dask Gateway, and two
# sample users (alice: researcher and reviewer; bob: viewer) whose password it prints. docs/deploy.md.
hub-demo: install
	$(BIN)/imaging-lab hub --demo

test: install
	$(BIN)/python -m pytest

bench: install
	$(PIP) --quiet -e '.[test,bench]'
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) node_modules widgets/static data/store
