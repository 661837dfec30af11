# Template development: `make demo` generates and validates a demo repository,
# `make test` runs the test suite. Everything is installed into .venv and .tools/.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
KUBECTL := $(CURDIR)/.tools/bin/kubectl
HELM := $(CURDIR)/.tools/bin/helm
# Jenkinsfile linter: 16.2.0 is the last release that runs on Node 20 (with Java 17).
GROOVY_LINT := $(CURDIR)/.tools/npm/node_modules/.bin/npm-groovy-lint
# GitHub Actions workflow validator (SchemaStore's workflow schema plus path and glob checks).
ACTION_VALIDATOR := $(CURDIR)/.tools/npm/node_modules/.bin/action-validator
# The Prometheus Operator's CRD types (ServiceMonitor, PrometheusRule) as validators, for the tests.
PROMETHEUS_TYPES := $(CURDIR)/.tools/npm/node_modules/@kubernetes-models/prometheus-operator/package.json
# Reference data beside the checkout (schemas, chart values); optional outside CI.
SHARED ?= $(abspath ../shared)
DEMO_DIR ?= build/demo
PYTEST_ARGS ?= -n 2

export KUBECTL HELM GROOVY_LINT ACTION_VALIDATOR PROMETHEUS_TYPES
ifneq ($(wildcard $(SHARED)/schemas),)
export AIRFLOW_GITOPS_SCHEMA_DIR := $(SHARED)/schemas
export AIRFLOW_CHART_VALUES := $(SHARED)/chart/airflow-8.9.0-values.yaml
endif

# Airflow versions the runtime harness runs (tests/runtime/install.py knows their pins).
RUNTIME_AIRFLOW ?= 2.8.4 3.1.8 3.2.2 3.3.2

.PHONY: help setup tools runtime demo test test-all lint docs bench release clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-test.txt
	touch $@

$(KUBECTL): | $(VENV)/.installed
	$(PY) template/scripts/install_tools.py --dest .tools/bin

$(GROOVY_LINT) $(ACTION_VALIDATOR):
	npm install --prefix .tools/npm --no-audit --no-fund --loglevel=error npm-groovy-lint@16.2.0 \
		@action-validator/cli@0.6.0 @action-validator/core@0.6.0

$(PROMETHEUS_TYPES): | $(GROOVY_LINT)
	npm install --prefix .tools/npm --no-audit --no-fund --loglevel=error @kubernetes-models/prometheus-operator@6.0.0

setup: $(VENV)/.installed $(KUBECTL) $(GROOVY_LINT) $(ACTION_VALIDATOR) $(PROMETHEUS_TYPES) ## create .venv, install kubectl/helm, npm-groovy-lint, action-validator and the Prometheus Operator's types into .tools

tools: $(KUBECTL)

runtime: $(VENV)/.installed ## runtime harness: Debian servers and a pgbouncer build (as root), real Airflow from PyPI into .runtime/
	$(PY) tests/runtime/install.py --debian $(foreach v,$(RUNTIME_AIRFLOW),--airflow $(v))

demo: setup ## generate build/demo from examples/demo.yml and run its `make validate`
	rm -rf $(DEMO_DIR)
	$(VENV)/bin/copier copy --trust --defaults --data-file examples/demo.yml . $(DEMO_DIR)
	$(MAKE) -C $(DEMO_DIR) validate TOOLS_PYTHON=$(abspath $(PY))

# pytest exit 5 (nothing collected) is a failure like any other.
run-pytest = @$(PY) -m pytest $(PYTEST_ARGS) $(1); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make $@: pytest collected no tests (exit 5): treat as failure" >&2; fi; \
	exit $$rc

test: setup ## the fast tier: every test but the slow ones (unit tests, a few end-to-end copies)
	$(call run-pytest,-m "not slow")

test-all: setup ## everything CI runs: the fast tier plus the slow one (runtime harness: `make runtime` first)
	$(call run-pytest,)

lint: setup ## ruff
	$(VENV)/bin/ruff check .

docs: ## regenerate docs/questions.md from copier.yml (tests/test_docs.py checks it is current)
	$(PY) docs/gen_questions.py

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

release: ## tag v$(VERSION) from pyproject.toml once CHANGELOG.md has its section and the tree is clean
	@grep -q '^## $(VERSION)' CHANGELOG.md || { echo "release: CHANGELOG.md has no '## $(VERSION)' section" >&2; exit 1; }
	@test -z "$$(git status --porcelain)" || { echo "release: commit your changes first" >&2; exit 1; }
	git tag -a v$(VERSION) -m "airflow-eks-gitops $(VERSION)"
	@echo "release: tagged v$(VERSION); push it with: git push origin v$(VERSION)"

bench: setup ## DAG publisher vs cp -a and rsync -a (1 ms FUSE latency fs, local disk); copier copy vs Copier's floor
	$(PY) benchmarks/bench_sync_dags.py $(BENCH_ARGS)
	$(PY) benchmarks/bench_copy.py

clean: ## remove build output (keeps .venv and .tools)
	rm -rf build .pytest_cache
