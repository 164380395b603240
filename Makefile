# The user's interface to the pipeline. `make help` lists every target.
# Variables: TARGET (embedded|compose|aws), PORT, ORDERS, RATE, DURATION, SEED, DAYS, ENGINE, EMULATOR,
# EMPTY, AUTO_APPROVE, USE_DOCKER.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VENV_EMU := .venv-emu
VENV_CLIENTS := .venv-clients
PY := $(VENV)/bin/python
CLI := $(PY) -m cli
PIP_VERSION := 26.3

TARGET ?= $(if $(filter 1,$(USE_DOCKER)),compose,embedded)
PORT ?= 4566
ORDERS ?= 2000
RATE ?=
DURATION ?=
SEED ?= 42
DAYS ?= 14
ENGINE ?= duckdb
FORMAT ?= table
EMULATOR ?= ministack
export TARGET PORT

COMPOSE := docker compose -f compose/docker-compose.yml
PIPELINE_SVC := $(if $(filter localstack,$(EMULATOR)),pipeline-localstack,pipeline)
# On TARGET=compose the runners live in a container: commands that read their state run there.
IN_RUNNER := $(if $(filter compose,$(TARGET)),$(COMPOSE) exec $(PIPELINE_SVC) pipeline,$(CLI))

.DEFAULT_GOAL := help
.PHONY: help _guard install up down plan apply destroy seed drain status crawl analyze verify demo test test-unit \
        test-emulator test-aws test-browser test-readme lint bench chaos errors redrive query sql compact backfill \
        deploy-aws destroy-aws env awslocal logs clean

help: ## List every target, one line each
	@if [ -t 1 ]; then on='\033[36m'; off='\033[0m'; else on=''; off=''; fi; \
	grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' -v on="$$on" -v off="$$off" \
	  '{printf "  %s%-14s%s %s\n", on, $$1, off, $$2}'
	@echo "  variables: TARGET=$(TARGET) PORT=$(PORT) ORDERS=$(ORDERS) RATE=$(RATE) DURATION=$(DURATION) SEED=$(SEED) DAYS=$(DAYS)"
	@echo "             ENGINE=$(ENGINE) EMULATOR=$(EMULATOR) EMPTY=$(EMPTY) AUTO_APPROVE=$(AUTO_APPROVE) USE_DOCKER=$(USE_DOCKER)"

$(VENV)/.installed: pyproject.toml
	@echo "> installing the project's pinned dependencies into $(VENV) (a minute or two the first time)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q pip==$(PIP_VERSION)
	$(VENV)/bin/pip install -q -e '.[dev]'
	@touch $@

$(VENV_EMU)/.installed: pyproject.toml
	@echo "> installing the emulator (MiniStack, awscli, awslocal) into $(VENV_EMU)"
	$(PYTHON) -m venv $(VENV_EMU)
	$(VENV_EMU)/bin/pip install -q pip==$(PIP_VERSION)
	$(VENV_EMU)/bin/pip install -q --group emulator
	@touch $@

# A data engineer's notebook environment for the tests with real Athena clients: awswrangler pins
# pyarrow<26, which the project's pyarrow cannot follow (docs/athena.md).
$(VENV_CLIENTS)/.installed: pyproject.toml
	@echo "> installing the Athena client tools the tests use (awswrangler) into $(VENV_CLIENTS)"
	$(PYTHON) -m venv $(VENV_CLIENTS)
	$(VENV_CLIENTS)/bin/pip install -q pip==$(PIP_VERSION)
	$(VENV_CLIENTS)/bin/pip install -q --group clients
	@touch $@

install: $(VENV)/.installed $(VENV_EMU)/.installed ## Create the virtualenvs and install pinned dependencies

up: _guard install ## Start the emulator (embedded, or compose with EMULATOR=ministack|localstack), bootstrap, start the runners
ifeq ($(TARGET),compose)
ifeq ($(EMULATOR),localstack)
	$(COMPOSE) --profile localstack up -d --build --wait localstack pipeline-localstack
else
	$(COMPOSE) up -d --build --wait
endif
else
	$(CLI) up
endif

# Misuse is caught before anything is installed or started.
_guard:
ifeq ($(TARGET),compose)
ifeq ($(EMULATOR),localstack)
	@test -n "$$LOCALSTACK_AUTH_TOKEN" || { \
	  echo "error: LOCALSTACK_AUTH_TOKEN is not set; export your LocalStack token or use EMULATOR=ministack"; exit 1; }
endif
	@command -v docker >/dev/null && docker info >/dev/null 2>&1 || { \
	  echo "error: TARGET=compose needs a running Docker engine; use the default embedded target (make up)"; exit 1; }
endif

down: ## Stop the runners and the emulator that `make up` started
ifeq ($(TARGET),compose)
	$(COMPOSE) --profile localstack down
else
	$(CLI) down
endif

plan: install ## Print what the bootstrap would create, change or leave alone
	$(CLI) plan

apply: install ## Apply the bootstrap (idempotent)
	$(CLI) apply

destroy: install ## Delete every resource of the pipeline (add EMPTY=1 to delete bucket contents)
	$(CLI) destroy $(if $(filter 1,$(EMPTY)),--empty-buckets,)

seed: install ## Stream orders and their lifecycle changes into DynamoDB (ORDERS, RATE, DURATION, SEED, DAYS)
	$(CLI) seed --orders $(ORDERS) --seed $(SEED) --days $(DAYS) $(if $(RATE),--rate $(RATE),) $(if $(DURATION),--duration $(DURATION),)

drain: install ## Wait until the runners have delivered everything to the lake
	$(IN_RUNNER) drain

status: install ## Show each runner's position, lag, records, objects and errors (WATCH=1 refreshes until Ctrl-C)
	$(IN_RUNNER) status $(if $(filter 1,$(WATCH)),--watch,)

crawl: install ## Catalog the lake's partitions in Glue (the local crawler; the real one on aws)
	$(CLI) crawl

analyze: install ## Crawl, then print the KPIs and write the dashboard (ENGINE=duckdb|athena)
	$(CLI) analyze --engine $(ENGINE)

backfill: install ## Bring the table's existing items into the lake as snapshot rows, resumable (SINCE=, SEGMENTS=)
	$(CLI) backfill $(if $(SINCE),--since "$(SINCE)") $(if $(SEGMENTS),--segments $(SEGMENTS))

verify: install ## Reconcile the lake's current state with a DynamoDB scan (exit 1 on any difference)
	$(CLI) verify

demo: up seed drain analyze verify ## up + seed + drain + analyze + verify, end to end

test: install $(VENV_CLIENTS)/.installed ## Run every tier: unit, emulator, aws (moto), browser, readme (a target each below)
	$(PY) -m pytest -q

test-unit: install ## Only tests/unit: no server, fast
	$(PY) -m pytest -q -m unit

test-emulator: install $(VENV_CLIENTS)/.installed ## Only tests/emulator: against the embedded emulator
	$(PY) -m pytest -q -m emulator

test-aws: install ## Only tests/aws: against moto (an AWS control-plane stand-in on 127.0.0.1)
	$(PY) -m pytest -q -m aws

test-browser: install ## Only tests/browser: the dashboard in headless Chromium
	$(PY) -m pytest -q -m browser

test-readme: install ## Only tests/readme: the README's commands in a fresh clone (make demo; slow)
	$(PY) -m pytest -q -m readme

lint: install ## ruff
	$(VENV)/bin/ruff check .

env: ## Print shell exports so aws / awslocal / boto3 reach the stack: eval "$(make -s env)"
	@$(CLI) env

awslocal: ## Run awslocal against the stack, e.g. make awslocal ARGS="dynamodb scan --table-name sales_orders"
	@eval "$$($(CLI) env)" && awslocal $(ARGS)

logs: ## Follow the emulator's and the runners' logs
ifeq ($(TARGET),compose)
	$(COMPOSE) logs -f
else
	tail -F .state/emulator-$(PORT).log .state/athena-*.log .state/runners/*.log
endif

bench: install ## Benchmarks, as ratios against references measured in the same run (ARGS="--quick" for a short run)
	$(PY) -m bench $(ARGS)

chaos: install ## Kill the runners at random and restart the emulator during a seed; verify must agree, 0 lost (ORDERS=)
	$(PY) -m chaos --orders $(ORDERS) $(ARGS)

errors: install ## List every error record with its reason (from the Lambda's log group)
	$(CLI) errors

redrive: install ## Replay the error output through the pipeline after a fix (idempotent: a second run changes nothing)
	$(CLI) redrive

query: install ## Your own Athena SQL on the lake: SQL="SELECT ..." or FILE=path.sql (FORMAT=table|csv|json, ENGINE=)
	$(CLI) query $(if $(FILE),--file $(FILE),"$$SQL") --engine $(ENGINE) --format $(FORMAT)

sql: install ## An interactive Athena SQL prompt over the lake (history, completion)
	$(CLI) sql

compact: install ## Rewrite many small lake objects into few large Parquet files (DAY=YYYY-MM-DD, TARGET_ROWS=n)
	$(CLI) compact $(if $(DAY),--day $(DAY),) $(if $(TARGET_ROWS),--target-rows $(TARGET_ROWS),)

deploy-aws: install ## Deploy to real AWS: print the plan (account, caller, region, names), confirm unless AUTO_APPROVE=1, apply
	$(CLI) deploy-aws

destroy-aws: install ## Delete every AWS resource tagged with this project (EMPTY=1 also deletes the buckets' objects)
	$(CLI) destroy-aws $(if $(filter 1,$(EMPTY)),--empty-buckets,)

clean: ## Remove generated state (not the virtualenvs)
	rm -rf .state results dashboard
