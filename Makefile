# Augur — every target sets up what it needs on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed
export AUGUR_HOME ?= $(CURDIR)/.augur
export BENTOML_HOME ?= $(AUGUR_HOME)/bentoml
export RAY_USAGE_STATS_ENABLED := 0
export BENTOML_DO_NOT_TRACK := True
export DO_NOT_TRACK := 1

.PHONY: help setup demo test lint bench bento clean system-deps k8s-build k8s-up k8s-down k8s-test kind-up mutation

help: ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q "uv==$(UV_VERSION)"
	$(UV) pip install --python $(PY) -q --compile-bytecode -r requirements.lock
	$(UV) pip install --python $(PY) -q --no-deps -e .
	@touch $@

setup: $(STAMP) system-deps ## create .venv and install the pinned dependencies + system servers

# Servers the integration tests and the demo run for real (Debian packages): redis-server,
# and PostgreSQL for the prediction log's tests (they initdb a throwaway cluster, so no
# system-wide one is created).
system-deps:
	@pkgs=""; \
	command -v redis-server >/dev/null || pkgs="$$pkgs redis-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || pkgs="$$pkgs postgresql"; \
	if [ -n "$$pkgs" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing$$pkgs (Debian packages)"; \
	    mkdir -p /etc/postgresql-common/createcluster.d; \
	    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/augur-no-main.conf; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$pkgs >/dev/null; \
	  else \
	    echo "missing:$$pkgs: run 'sudo apt-get install$$pkgs' (Debian/Ubuntu) and retry" >&2; exit 1; \
	  fi; \
	fi

demo: setup ## run the main job end to end on embedded defaults
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH bash scripts/demo.sh

test: setup k8s-build ## run unit, integration and k8s tests (real Redis, Feast, bentoml serve, Ray, API server) with coverage
	$(PY) -m pytest --cov=augur --cov-report=term --cov-fail-under=90 $(PYTEST_ARGS)

# The k8s tier's control plane (kube-apiserver, controller-manager, scheduler, etcd, kwok,
# helm) is built from Go modules once and cached under ~/.cache/augur/k8s/; the CRDs the
# tests apply (KubeRay's; the Prometheus operator's ServiceMonitor, PodMonitor and
# PrometheusRule, for the chart's observability objects) come from their Go modules into
# the module cache under ~/.cache/augur/go; promql-check (Prometheus's PromQL parser, from
# tests/k8s/promql) checks the chart's alert and dashboard queries. Rendered chart objects
# are validated by the real API server (`kubectl create --dry-run=server --validate=strict`),
# not kubeconform, whose schemas would come from GitHub. Without Go the tier is skipped,
# and says so.
K8S_DIR := $(AUGUR_HOME)/k8s

k8s-build: setup ## build (or reuse) the control plane's binaries from Go modules
	@if command -v go >/dev/null; then $(PY) -m tests.k8s.controlplane build; \
	else echo "k8s tier skipped: Go is not on PATH (it builds kube-apiserver, etcd and kwok)"; fi

k8s-up: k8s-build ## start a real control plane on 127.0.0.1; kubeconfig at .augur/k8s/kubeconfig
	$(PY) -m tests.k8s.controlplane up --dir $(K8S_DIR)

k8s-down: ## stop the control plane started by k8s-up
	$(PY) -m tests.k8s.controlplane down --dir $(K8S_DIR)

kind-up: setup ## (needs Docker, kind, helm) Augur on a kind cluster: KubeRay, image, CRDs, operator, a sample DecisionService
	bash scripts/kind_up.sh

k8s-test: k8s-build ## run only the k8s tier (operators against a real control plane)
	$(PY) -m pytest tests/k8s tests/unit/cluster $(PYTEST_ARGS)

# Helm never upgrades a chart's crds/: apply them before `helm upgrade`, against the cluster
# of $KUBECONFIG. --force-conflicts takes over fields an earlier install or apply owns.
.PHONY: crds-upgrade
crds-upgrade: ## apply helm/augur/crds server-side to the cluster of $KUBECONFIG (before helm upgrade)
	kubectl apply --server-side --force-conflicts -f helm/augur/crds/

# The layers (import-linter): contracts in pyproject.toml, [tool.importlinter].
lint: setup ## ruff + mypy + the import layers (lint-imports)
	$(VENV)/bin/ruff check src tests benchmarks bentos tuning feature_repo operators scripts
	$(VENV)/bin/ruff format --check src tests benchmarks bentos tuning feature_repo operators scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-logo --cache-dir $(AUGUR_HOME)/import-linter-cache

# Mutation testing (mutmut) of the modules that decide money, each against only its own
# unit tests: decision, walk-forward, metrics, features, dynamic weights, the routing split.
# Prints a per-module table and writes .augur/mutation/report.md. Not part of make test;
# about 8 minutes on 2 cores.
# One module: make mutation MUTATION_ARGS="decision --fail-under 85".
MUTATION_ARGS ?= --fail-under 85
mutation: setup ## mutation testing of the money-deciding modules (report: .augur/mutation/report.md)
	$(PY) scripts/mutation.py $(MUTATION_ARGS)

# One benchmark: make bench BENCH_ARGS=serving. The serving bench's A/B against another
# commit in the same run: AUGUR_BENCH_BASELINE=<git ref> (its code serves from a git worktree);
# AUGUR_BENCH_SECONDS and AUGUR_BENCH_ROUNDS trade time for steadiness.
bench: setup ## run every benchmark: our figure, the peer's, the ratio
	$(PY) -m benchmarks $(BENCH_ARGS)

bento: setup ## build the decision service's Bento (its generated Dockerfile is the image Helm deploys)
	$(UV) build --wheel --out-dir bentos/decision/dist
	cd bentos/decision && $(CURDIR)/$(VENV)/bin/bentoml build .

clean: ## remove the virtualenv and the working directory
	rm -rf $(VENV) $(AUGUR_HOME)

# Reliability under load and faults (docs/reliability.md): each scenario runs against the
# real processes (augur serve with two workers, Redis, PostgreSQL for the log) with a
# fixed-rate load on 127.0.0.1, and one table is printed (also written to
# .augur/chaos.md). About 18 minutes, the soak 10 of them; not part of make test, which
# runs a 20-second soak and the Redis kill (tests/chaos/test_chaos_short.py).
# Some scenarios: make chaos CHAOS_ARGS="redis pglog --rate 100".
.PHONY: chaos
CHAOS_ARGS ?=
chaos: setup ## reliability under load and faults: soak, Redis, worker and PostgreSQL killed, bad tables and tokens, API fuzz
	$(PY) -m tests.chaos --markdown $(AUGUR_HOME)/chaos.md $(CHAOS_ARGS)
