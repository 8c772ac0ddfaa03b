# Two commands set up a fresh machine and use it:
#   make run    create .venv, install the toolkit (the orchestrator only: no extra), run a health-gated upgrade of the
#               simulated platform
#   make test   create .venv, install everything (the dev extra), install the test tools (promtool, the
#               Elasticsearch exporter) and the local data plane's host tools (nftables, stunnel4), build the local
#               Kubernetes control plane (cached), run every tier
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run

.PHONY: run test test-fast bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP) $(RUN_STAMP)

# what running needs and nothing more (a later `make test` adds the dev extra to the same .venv)
$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/toolkit cluster up --env sim
	$(BIN)/toolkit upgrade run --env sim --to kafka=4.1.0 --to elasticsearch=8.19.3 --to workers=0.2.0

test: $(STAMP)
	bash scripts/test-tools.sh
	bash scripts/local-control-plane.sh
	bash scripts/local-data-plane.sh
	$(BIN)/pytest -m "" --durations=15

test-fast: $(STAMP)
	bash scripts/test-tools.sh
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/engine_bench.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
