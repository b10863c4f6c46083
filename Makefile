# The one entry point. `make help` lists the targets.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 7600

.PHONY: help install demo serve test test-clickhouse bench fuzz lint format typecheck clean screenshots
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

help: ## Show this help
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The browser tests drive Debian's Chromium (Playwright's own download is out of reach).
$(CHROMIUM):
	$(SUDO) apt-get install -y chromium || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }

install: $(STAMP) $(CHROMIUM) ## Create .venv and install Sightline with everything the tests need

demo: $(STAMP) ## Serve on http://127.0.0.1:7600 with a simulated RAG app sending traces
	$(BIN)/sightline demo --port $(PORT) --data-dir ./sightline-data --log-format console

serve: $(STAMP) ## Serve on http://127.0.0.1:7600 (DuckDB store in ./sightline-data)
	$(BIN)/sightline serve --port $(PORT)

test: $(STAMP) $(CHROMIUM) ## Run the whole test suite (benchmarks in their quick form)
	$(BIN)/python -m pytest -n 2 -q --durations=25

# The server-level suites again, every test server on the ClickHouse store (chdb in-process);
# `make test` runs the store suite and the REST API suite on both stores already.
CH_SUITES := tests/e2e tests/server tests/alerts tests/budgets tests/prompts tests/releases \
	tests/dashboard tests/evals tests/gateway tests/drift
test-clickhouse: $(STAMP) $(CHROMIUM) ## Run the server-level suites with the ClickHouse store
	SIGHTLINE_TEST_STORE=clickhouse $(BIN)/python -m pytest -n 2 -q $(CH_SUITES)

bench: $(STAMP) ## Run the benchmarks in full and print their medians
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/query.py
	$(BIN)/python bench/evals.py
	$(BIN)/python bench/monitor.py
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/pages.py
	$(BIN)/python bench/score_write.py
	$(BIN)/python bench/signals.py
	$(BIN)/python bench/sdk_overhead.py
	$(BIN)/python bench/store_compare.py
	$(BIN)/python bench/control.py
	$(BIN)/python bench/ch_evals.py
	$(BIN)/python bench/wal_replay.py
	$(BIN)/python bench/soak.py  # 10 minutes at 5,000 spans/s

screenshots: $(STAMP) $(CHROMIUM) ## Save a PNG of every dashboard page, with demo data, in docs/screenshots/
	$(BIN)/python scripts/screenshots.py docs/screenshots

fuzz: $(STAMP) ## Fuzz the API (schemathesis) and the OTLP normaliser (hypothesis) in full
	SIGHTLINE_FUZZ_EXAMPLES=200 $(BIN)/python -m pytest -p no:xdist -q --timeout=3600 tests/fuzz

lint: $(STAMP) ## ruff (lint + format check) and mypy --strict on src/
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: $(STAMP) ## Format the code
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

typecheck: $(STAMP) ## mypy --strict on src/
	$(BIN)/mypy

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
