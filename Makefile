# Durable: `make run` starts the engine (embedded Postgres, API + dashboard on :3030) after installing only
# what running needs (the engine into .venv, the dashboard built with `npm ci`); `make test` installs the
# test tools too (the [test] extra, the SDKs' packages, and Debian's php-cli, phpunit, chromium, composer
# and pgbouncer with apt-get) and runs every suite. `make dist` builds the packages into dist/.
.DEFAULT_GOAL := help
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -qq --disable-pip-version-check
RUN_STAMP := $(VENV)/.installed-run
SDK_STAMP := $(VENV)/.installed-sdk
STAMP := $(VENV)/.installed
# npm writes node_modules/.package-lock.json on every install, so an `npm ci` run by anyone (the build hook,
# the SDK's `prepare`) counts.
TS_STAMP := sdks/typescript/node_modules/.package-lock.json
DASH_STAMP := dashboard/node_modules/.package-lock.json
DASH_BUILT := src/durable/dashboard/static/index.html
NPM := npm --no-audit --no-fund --loglevel=error
DIST := dist
DURABLE_PORT := $${PORT:-3030}

# What running needs: the engine (editable, no test extra). The version lives in VERSION.
$(RUN_STAMP): pyproject.toml setup.py VERSION
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) -e .
	touch $(RUN_STAMP)

# The Python SDK (editable), for the demo apps of `make dev` and for the tests.
$(SDK_STAMP): $(RUN_STAMP) sdks/python/pyproject.toml
	$(PIP) -e sdks/python
	touch $(SDK_STAMP)

# What the tests need on top: the [test] extra.
$(STAMP): $(SDK_STAMP)
	$(PIP) -e '.[test]'
	touch $(STAMP)

$(TS_STAMP): sdks/typescript/package-lock.json sdks/typescript/package.json
	cd sdks/typescript && $(NPM) ci
	touch $(TS_STAMP)

$(DASH_STAMP): dashboard/package-lock.json
	cd dashboard && $(NPM) ci
	touch $(DASH_STAMP)

$(DASH_BUILT): $(DASH_STAMP) $(shell find dashboard/src dashboard/public dashboard/index.html dashboard/vite.config.ts dashboard/tsconfig.json dashboard/package.json -type f 2>/dev/null)
	cd dashboard && $(NPM) run build

.PHONY: install
install: $(DASH_BUILT) $(STAMP) ## .venv with the engine, the Python SDK and test tools; the dashboard built

# The dashboard build and the pip install share nothing (an editable install skips the build hook): run both
# at once, which takes a cold `make run` from the sum of the two to the longer one.
.PHONY: install-run
install-run: ## .venv with the engine only (what `make run` installs); the dashboard built
	@$(MAKE) -s --no-print-directory -j2 --output-sync=target dashboard $(RUN_STAMP)

# The dashboard for run/dev: built when npm is there; without npm the engine still serves the API, and `/`
# says how to build the dashboard.
.PHONY: dashboard
dashboard:
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory $(DASH_BUILT); \
	else echo "make: npm not found: skipping the dashboard build (install Node.js 20+ for it); the API still runs"; fi

.PHONY: system-deps
system-deps: ## Debian packages the tests use (never needed to run): php-cli, phpunit, chromium, composer, pgbouncer
	@if ! command -v php >/dev/null || ! command -v phpunit >/dev/null || ! command -v chromium >/dev/null \
	  || ! command -v composer >/dev/null || ! command -v pgbouncer >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq php-cli phpunit chromium composer pgbouncer >/dev/null; \
	fi

.PHONY: sdks
sdks: $(TS_STAMP) ## build the TypeScript SDK (ESM in dist/, CommonJS in dist/cjs/)
	cd sdks/typescript && $(NPM) run build

.PHONY: install-sdks
install-sdks: $(SDK_STAMP) ## what `make dev`'s demo apps need: the Python SDK, the TypeScript SDK built (needs node)
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory sdks; \
	else echo "make: npm not found: the TypeScript SDK is not built, so make dev skips the typescript demo"; fi

.PHONY: dist
dist: $(DASH_BUILT) $(RUN_STAMP) ## the engine wheel (dashboard inside) and the Python SDK wheel in dist/
	rm -rf build sdks/python/build
	$(PY) -m pip wheel -q --disable-pip-version-check --no-deps -w $(DIST) . sdks/python
	@ls -1 $(DIST)/durable_engine-$$(cat VERSION)-*.whl $(DIST)/durable_sdk-$$(cat VERSION)-*.whl

.PHONY: version
version: ## check that every package states the version in VERSION; `make version V=1.2.3` sets it everywhere
	python3 -m build_hooks.versions $(V)

.PHONY: run
run: install-run ## start the engine on the embedded Postgres (DATABASE_URL switches to another)
	@echo ""
	@echo "  Durable is starting: dashboard http://localhost:$(DURABLE_PORT)/  (API docs: /api/docs)"
	@echo "  A workspace and a first event, from another shell (docs/cli.md):"
	@echo "    .venv/bin/durable apps create demo --env-file .env && set -a && . ./.env && set +a && .venv/bin/durable send demo.hello --data '{}'"
	@echo ""
	$(VENV)/bin/durable start

.PHONY: dev
dev: install-run install-sdks ## the full local stack: engine, a worker, and the demo apps it can start here (no apt-get)
	$(VENV)/bin/durable dev

.PHONY: lint
lint: $(STAMP) ## ruff, mypy --strict (engine and Python SDK), php -l + strict_types, tsc (when installed)
	$(VENV)/bin/ruff check src tests sdks/python examples/python bench build_hooks setup.py
	$(VENV)/bin/ruff format --check src tests build_hooks setup.py
	$(VENV)/bin/mypy
	cd sdks/python && ../../$(VENV)/bin/mypy durable_sdk
	@if command -v php >/dev/null; then $(MAKE) --no-print-directory lint-php; \
	else echo "lint: php not installed: the PHP SDK is checked by make test (lint-php after system-deps)"; fi
	@if [ -x sdks/typescript/node_modules/.bin/tsc ]; then cd sdks/typescript && node_modules/.bin/tsc --noEmit -p tsconfig.json \
	  && echo "lint: the TypeScript SDK type-checks (strict, exactOptionalPropertyTypes)"; \
	else echo "lint: the TypeScript SDK is type-checked by its build (make sdks)"; fi

# After system-deps (PHP is a test tool here): every PHP file parses and declares strict_types. The
# TypeScript SDK's strictness (strict, exactOptionalPropertyTypes) is its tsconfig, checked by its build.
.PHONY: lint-php
lint-php: ## php -l and declare(strict_types=1) on every file of the PHP SDK
	@for f in $$(find sdks/php -name '*.php' -not -path '*/vendor/*'); do \
	  php -l "$$f" >/dev/null || exit 1; \
	  grep -q 'declare(strict_types=1);' "$$f" || { echo "$$f: missing declare(strict_types=1)"; exit 1; }; \
	done; echo "lint-php: every PHP file parses and is strict"

.PHONY: test
test: lint install sdks system-deps ## every suite: lint, PHP and TypeScript SDK tests, then pytest (engine, Python SDK, e2e, browser)
	$(MAKE) --no-print-directory lint-php
	cd sdks/php && phpunit --colors=never
	cd sdks/typescript && $(NPM) test
	$(PY) -m pytest -q -m "not slow" tests sdks/python/tests

.PHONY: test-all
test-all: lint install sdks system-deps ## every suite including slow and load tests
	$(MAKE) --no-print-directory lint-php
	cd sdks/php && phpunit --colors=never
	cd sdks/typescript && $(NPM) test
	$(PY) -m pytest -q tests sdks/python/tests

.PHONY: bench
bench: install ## print the benchmark figures (see bench/RESULTS.md)
	$(PY) bench/run.py

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
