# Two commands do everything on a fresh Debian machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export LOADER_STATE_DIR ?= $(CURDIR)/.state
export DAGSTER_HOME ?= $(LOADER_STATE_DIR)/dagster
# Qserv's integration inputs, when they sit beside the checkout (.ci/run requires them; elsewhere their tests skip)
export LOADER_QSERV_ITEST ?= $(abspath $(wildcard $(CURDIR)/../shared/qserv-itest))

.PHONY: demo test unit lint servers venv clean screenshots

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml loader_assets/workers/_key_scan.c
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/python -m compileall -q loader_assets  # as pip does for an installed package (PYTHONDONTWRITEBYTECODE)
	touch $@

servers:
	bash scripts/ensure-servers.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Most server-bound tests wait (on daemons, runs, servers), so three test processes share two cores; a file's
# tests stay in one process (the Celery tests share one broker queue). TEST_PROCESSES=0 runs them in this one.
TEST_PROCESSES ?= 3
test: venv servers lint
	$(BIN)/pytest -q -n $(TEST_PROCESSES) --dist loadfile --durations=15

# The server-free tier (no PostgreSQL, MariaDB, RabbitMQ or daemon): seconds, on any machine with Python.
unit: venv
	$(BIN)/pytest -q -m unit

demo: venv servers
	bash scripts/demo.sh

# After `make demo`: the README's screenshots of the operator's view (docs/images/).
screenshots: venv servers
	$(BIN)/pip install -q -e ".[ui]"
	$(BIN)/python scripts/screenshots.py

clean:
	-$(BIN)/loader-assets workers down
	rm -rf $(LOADER_STATE_DIR)
