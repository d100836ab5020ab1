# Vein-to-Vein front door. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.9
# uv from the PATH; where there is none, tools/ensure_uv.sh installs the pinned one here
export PATH := $(PATH):$(CURDIR)/.v2v/uv/bin
UV ?= uv
ENSURE_UV = @UV='$(UV)' UV_VERSION=$(UV_VERSION) tools/ensure_uv.sh
PYTEST_ARGS ?=
DEMO_ARGS ?=
UP_ARGS ?=
GEN_STAMP := libs/contracts/src/v2v/.generated
PROTO_FILES := $(shell find proto -name '*.proto' 2>/dev/null)

.PHONY: help setup proto lint test test-unit test-integration deploy-check bench bench-quick bench-relay bench-relay-latency bench-capacity demo demo-clean up down status kafka-up kafka-down pg-up pg-down golden openapi clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F ':.*?## ' '{printf "  \033[1m%-18s\033[0m %s\n", $$1, $$2}'

setup: ## install everything from the registries (uv itself when missing; checks prerequisites first)
	$(ENSURE_UV)
	@tools/check_prereqs.sh
	$(UV) sync --frozen
	@touch .venv/.synced
	@$(MAKE) --no-print-directory proto
	tools/buf.sh --version
	@if [[ -z "$${V2V_KAFKA_BOOTSTRAP:-}" ]] && command -v java >/dev/null && command -v mvn >/dev/null; then \
		infra/kafka/kafka.sh fetch; fi

.venv/.synced: uv.lock pyproject.toml
	$(ENSURE_UV)
	@tools/check_prereqs.sh
	$(UV) sync --frozen
	@touch $@

$(GEN_STAMP): .venv/.synced $(PROTO_FILES) tools/gen_proto.py
	$(UV) run --frozen python tools/gen_proto.py
	@touch $@

proto: .venv/.synced ## generate Python + .pyi from proto/ into libs/contracts/src (not committed)
	$(UV) run --frozen python tools/gen_proto.py
	@touch $(GEN_STAMP)

lint: $(GEN_STAMP) ## ruff + mypy + buf lint + proto breaking check against main
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy libs/platform/src libs/simulator/src libs/testkit/src services tools
	tools/buf.sh lint
	tools/proto_breaking.sh
	@if git ls-files libs/contracts/src/v2v | grep -E '_pb2(_grpc)?\.pyi?$$'; then \
		echo "generated proto code is committed above; it must stay generated-only (make proto)"; exit 1; fi

test: $(GEN_STAMP) deploy-check ## all tests: unit (in memory) + integration (real Kafka and PostgreSQL) + deploy-check
	$(UV) run --frozen pytest $(PYTEST_ARGS)

test-unit: $(GEN_STAMP) ## unit tests only
	$(UV) run --frozen pytest -m "not integration" $(PYTEST_ARGS)

test-integration: $(GEN_STAMP) ## integration tests only (starts Kafka and PostgreSQL if needed)
	$(UV) run --frozen pytest -m integration $(PYTEST_ARGS)

deploy-check: .venv/.synced ## validate Dockerfile, docker-compose.yml and the Helm chart (no Docker or cluster needed)
	tools/deploy_check.sh

bench: $(GEN_STAMP) ## every benchmark of issue 18 in one run, beside its target and the previous run -> bench/results/latest.json (BENCH_ARGS="--only scan_visible,reads"; --list)
	$(UV) run --frozen python bench/run.py $(BENCH_ARGS)

bench-quick: $(GEN_STAMP) ## the same in each benchmark's quick mode (a smoke run) -> bench/results/latest-quick.json
	$(UV) run --frozen python bench/run.py --quick $(BENCH_ARGS)

bench-relay: $(GEN_STAMP) ## relay publish rate with checkpoints every 1 s vs disabled (prints figures)
	$(UV) run --frozen python bench/bench_relay_checkpoints.py

bench-relay-latency: $(GEN_STAMP) ## store->publish latency p50/p99 at 20/50/100 saves/s: fixed 50 ms sleep vs wake-on-write, SQLite + PostgreSQL
	$(UV) run --frozen python bench/bench_relay_latency.py

bench-capacity: $(GEN_STAMP) ## one projection replica's capacity on the 1M-event history: chains, RSS, MB per 100k events, start-up load
	$(UV) run --frozen python bench/bench_projection_capacity.py

demo: setup ## run the whole system on its embedded default (local Kafka, SQLite, 30 simulated patients)
	$(UV) run --frozen python -m v2v_simulator demo $(DEMO_ARGS)

demo-clean: ## stop what up started and the demo's broker, remove their data (.v2v-data), to start over
	$(UV) run --frozen python -m v2v_simulator clean

up: setup ## start the system and leave it running (seeds 12 patients the first time; UP_ARGS="--patients N"); prints the console URL and logins
	$(UV) run --frozen python -m v2v_simulator up $(UP_ARGS)

down: $(GEN_STAMP) ## stop what `make up` started
	$(UV) run --frozen python -m v2v_simulator down

status: $(GEN_STAMP) ## what `make up` started: running, ready, ports
	$(UV) run --frozen python -m v2v_simulator status

kafka-up: ## start the local single-node KRaft broker; prints the bootstrap address
	@infra/kafka/kafka.sh up

kafka-down: ## stop the local broker
	@infra/kafka/kafka.sh down

pg-up: ## start the throwaway local PostgreSQL; prints the DSN
	@infra/postgres/pg.sh up

pg-down: ## stop the local PostgreSQL
	@infra/postgres/pg.sh down

openapi: $(GEN_STAMP) ## rewrite the OpenAPI snapshots in contracts/openapi (review the diff)
	$(UV) run --frozen python tools/openapi_snapshot.py --write

golden: $(GEN_STAMP) ## rewrite every golden vector: envelope + each context's events (only on purpose)
	$(UV) run --frozen python -m v2v_testkit.golden --write

clean: ## stop local infrastructure and remove generated code and local state
	-@if [[ -f .v2v-data/up.json ]]; then $(UV) run --frozen python -m v2v_simulator down; fi
	-@infra/kafka/kafka.sh down >/dev/null 2>&1
	-@infra/postgres/pg.sh down >/dev/null 2>&1
	rm -rf .v2v .venv/.synced $(GEN_STAMP)
	find libs/contracts/src/v2v -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
