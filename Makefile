# Durable: `make run` starts the engine (embedded Postgres, API + dashboard on :3030); `make test` runs
# every suite. Both install what they need into .venv first.
.DEFAULT_GOAL := help
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml sdks/python/pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]' -e sdks/python
	touch $(STAMP)

.PHONY: install
install: $(STAMP) ## create .venv and install the engine, the Python SDK and the test tools

.PHONY: run
run: $(STAMP) ## start the engine on the embedded Postgres (DATABASE_URL switches to another)
	$(VENV)/bin/durable start

.PHONY: lint
lint: $(STAMP) ## ruff (lint + format check) and mypy --strict
	$(VENV)/bin/ruff check src tests sdks/python examples/python bench
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy

.PHONY: test
test: lint ## run every suite (lint, engine unit/integration/e2e, SDKs)
	$(PY) -m pytest -q -m "not slow" tests sdks/python/tests

.PHONY: test-all
test-all: $(STAMP) ## every suite including slow and load tests
	$(PY) -m pytest -q tests sdks/python/tests

.PHONY: bench
bench: $(STAMP) ## print the benchmark figures (see bench/RESULTS.md)
	$(PY) bench/run.py

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
