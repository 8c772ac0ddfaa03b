# Two commands set up a fresh machine and use it:
#   make run    create .venv, install the toolkit, run a health-gated upgrade of the simulated platform
#   make test   create .venv, install everything, build the local Kubernetes control plane (cached), install the
#               local data plane's host tools (nftables, stunnel4), run every tier
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/toolkit cluster up --env sim
	$(BIN)/toolkit upgrade run --env sim --to kafka=4.1.0 --to elasticsearch=8.19.3 --to workers=0.2.0

test: $(STAMP)
	bash scripts/local-control-plane.sh
	bash scripts/local-data-plane.sh
	$(BIN)/pytest -m "" --durations=15

test-fast: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/engine_bench.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
