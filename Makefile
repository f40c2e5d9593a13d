# Durable: `make run` starts the engine (embedded Postgres, API + dashboard on :3030); `make test` runs
# every suite. Both install what they need first: Python packages into .venv, Node packages with
# `npm ci`, and (for the tests) Debian's php-cli, phpunit and chromium with apt-get.
.DEFAULT_GOAL := help
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TS_STAMP := sdks/typescript/node_modules/.installed
DASH_STAMP := dashboard/node_modules/.installed
DASH_BUILT := src/durable/dashboard/static/index.html
NPM := npm --no-audit --no-fund --loglevel=error

$(STAMP): pyproject.toml sdks/python/pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]' -e sdks/python
	touch $(STAMP)

$(TS_STAMP): sdks/typescript/package-lock.json
	cd sdks/typescript && $(NPM) ci
	touch $(TS_STAMP)

$(DASH_STAMP): dashboard/package-lock.json
	cd dashboard && $(NPM) ci
	touch $(DASH_STAMP)

$(DASH_BUILT): $(DASH_STAMP) $(shell find dashboard/src dashboard/public dashboard/index.html dashboard/vite.config.ts dashboard/tsconfig.json dashboard/package.json -type f 2>/dev/null)
	cd dashboard && $(NPM) run build

.PHONY: install
install: $(STAMP) $(DASH_BUILT) ## .venv with the engine, the Python SDK and test tools; the dashboard built

.PHONY: system-deps
system-deps: ## Debian packages the tests use: php-cli, phpunit, chromium
	@if ! command -v php >/dev/null || ! command -v phpunit >/dev/null || ! command -v chromium >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq php-cli phpunit chromium >/dev/null; \
	fi

.PHONY: sdks
sdks: $(TS_STAMP) ## build the TypeScript SDK
	cd sdks/typescript && $(NPM) run build

.PHONY: run
run: install ## start the engine on the embedded Postgres (DATABASE_URL switches to another)
	$(VENV)/bin/durable start

.PHONY: dev
dev: install sdks system-deps ## the full local stack: engine, a worker, and the three demo apps
	$(VENV)/bin/durable dev

.PHONY: lint
lint: $(STAMP) ## ruff (lint + format check) and mypy --strict
	$(VENV)/bin/ruff check src tests sdks/python examples/python bench
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy

.PHONY: test
test: lint install sdks system-deps ## every suite: lint, PHP and TypeScript SDK tests, then pytest (engine, Python SDK, e2e, browser)
	cd sdks/php && phpunit --colors=never
	cd sdks/typescript && $(NPM) test
	$(PY) -m pytest -q -m "not slow" tests sdks/python/tests

.PHONY: test-all
test-all: lint install sdks system-deps ## every suite including slow and load tests
	cd sdks/php && phpunit --colors=never
	cd sdks/typescript && $(NPM) test
	$(PY) -m pytest -q tests sdks/python/tests

.PHONY: bench
bench: install ## print the benchmark figures (see bench/RESULTS.md)
	$(PY) bench/run.py

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
