# The user's interface to the pipeline. `make help` lists every target.
# Variables: TARGET (embedded|compose|aws), PORT, ORDERS, RATE, DURATION, SEED, DAYS, ENGINE, EMULATOR,
# EMPTY, AUTO_APPROVE, USE_DOCKER.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VENV_EMU := .venv-emu
VENV_CLIENTS := .venv-clients
VENV_TOOLS := .venv-tools
PY := $(VENV)/bin/python
CLI := $(PY) -m cli

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
.PHONY: help _guard install install-dev lock up down plan apply destroy seed drain status crawl analyze verify demo test test-unit \
        test-emulator test-aws test-browser test-readme lint bench chaos errors redrive query sql compact backfill \
        deploy-aws destroy-aws env awslocal logs clean

help: ## List every target, one line each
	@if [ -t 1 ]; then on='\033[36m'; off='\033[0m'; else on=''; off=''; fi; \
	grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' -v on="$$on" -v off="$$off" \
	  '{printf "  %s%-14s%s %s\n", on, $$1, off, $$2}'
	@echo "  variables: TARGET=$(TARGET) PORT=$(PORT) ORDERS=$(ORDERS) RATE=$(RATE) DURATION=$(DURATION) SEED=$(SEED) DAYS=$(DAYS)"
	@echo "             ENGINE=$(ENGINE) EMULATOR=$(EMULATOR) EMPTY=$(EMPTY) AUTO_APPROVE=$(AUTO_APPROVE) USE_DOCKER=$(USE_DOCKER)"

# Installs come only from the lock files in requirements/ (one per virtualenv, the whole tree with every
# file's hash), which `make lock` resolves from pyproject.toml. uv installs them: the one thing the
# Python's own pip installs is uv itself, hash-checked from requirements/tools.txt. A virtualenv holds
# exactly its lock (what the lock no longer lists is removed), and a changed lock re-runs its rule.
# uv creates the virtualenvs too (no pip inside: nothing installs with it), in well under a second where
# `python -m venv` spends 10 s or more installing pip into each.
# The runtime (.venv, .venv-emu) is all `make demo` needs; the test and lint tools come on top, and once
# there (pytest in .venv) they stay: .venv then follows dev.txt, the runtime plus those tools, same versions.
LOCKS := requirements
UV := $(VENV_TOOLS)/bin/uv
# --compile-bytecode: uv writes no .pyc files by default, and where PYTHONDONTWRITEBYTECODE is set (container
# images, CI machines like ours) Python never writes them either, so every process compiled botocore, MiniStack
# and the rest from source at each start: `make up` took 4.3-5.9 s in a fresh clone, 2.5-2.7 s compiled.
define sync_venv
	test -x $(1)/bin/python || $(UV) venv -q --clear --python $(PYTHON) $(1)
	$(UV) pip sync -q --compile-bytecode --python $(1)/bin/python --require-hashes $(2)
endef
install_project = $(UV) pip install -q --python $(VENV)/bin/python --no-deps -e . && $(UV) pip check -q --python $(VENV)/bin/python

$(UV): $(LOCKS)/tools.txt
	@echo "> installing uv, the installer of the lock files, into $(VENV_TOOLS)"
	test -x $(VENV_TOOLS)/bin/python || $(PYTHON) -m venv $(VENV_TOOLS)
	$(VENV_TOOLS)/bin/pip install -q --require-hashes -r $(LOCKS)/tools.txt
	@touch $@

$(VENV)/.installed: $(LOCKS)/runtime.txt pyproject.toml | $(UV)
	@echo "> installing the project and its locked runtime dependencies into $(VENV)"
	$(call sync_venv,$(VENV),$(if $(wildcard $(VENV)/.installed-dev $(VENV)/bin/pytest),$(LOCKS)/dev.txt,$(LOCKS)/runtime.txt))
	$(install_project)
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed $(LOCKS)/dev.txt | $(UV)
	@echo "> adding the locked test and lint tools (pytest, ruff, moto, ...) to $(VENV)"
	$(call sync_venv,$(VENV),$(LOCKS)/dev.txt)
	$(install_project)
	@touch $@

$(VENV_EMU)/.installed: $(LOCKS)/emulator.txt | $(UV)
	@echo "> installing the emulator (MiniStack, awscli, awslocal) into $(VENV_EMU)"
	$(call sync_venv,$(VENV_EMU),$(LOCKS)/emulator.txt)
	@touch $@

# A data engineer's notebook environment for the tests with real Athena clients: awswrangler pins
# pyarrow<26, which the project's pyarrow cannot follow (docs/athena.md).
$(VENV_CLIENTS)/.installed: $(LOCKS)/clients.txt | $(UV)
	@echo "> installing the Athena client tools the tests use (awswrangler) into $(VENV_CLIENTS)"
	$(call sync_venv,$(VENV_CLIENTS),$(LOCKS)/clients.txt)
	@touch $@

# The emulator's virtualenv only where an emulator runs on this machine (not for TARGET=aws).
install: $(VENV)/.installed $(if $(filter aws,$(TARGET)),,$(VENV_EMU)/.installed) ## Create the runtime virtualenvs from the lock files (no test tools)

install-dev: install $(VENV)/.installed-dev $(VENV_CLIENTS)/.installed ## install, plus the test and lint tools and the Athena clients' virtualenv

# Universal: one lock for every OS and Python 3.11+. Existing pins are kept unless pyproject.toml moved
# them (UPGRADE=1 takes the newest releases it allows); a lock whose content is unchanged keeps its date,
# so no virtualenv reinstalls for nothing.
lock: $(UV) ## Re-resolve the lock files (requirements/*.txt) from pyproject.toml (UPGRADE=1: newest allowed)
	@export UV_CUSTOM_COMPILE_COMMAND="make lock"; set -e; \
	compile() { out=$$1; shift; cp $$out $$out.new 2>/dev/null || true; \
	  $(UV) pip compile -q --universal --generate-hashes --python-version 3.11 \
	    $(if $(filter 1,$(UPGRADE)),--upgrade,) "$$@" -o $$out.new; \
	  if cmp -s $$out.new $$out; then rm $$out.new; else mv $$out.new $$out; echo "> $$out changed"; fi; }; \
	compile $(LOCKS)/runtime.txt pyproject.toml; \
	compile $(LOCKS)/dev.txt pyproject.toml --group dev -c $(LOCKS)/runtime.txt; \
	compile $(LOCKS)/emulator.txt --group emulator; \
	compile $(LOCKS)/clients.txt --group clients; \
	compile $(LOCKS)/tools.txt --group tools

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
	$(CLI) seed --orders "$(ORDERS)" --seed "$(SEED)" --days "$(DAYS)" $(if $(RATE),--rate $(RATE),) $(if $(DURATION),--duration $(DURATION),)

drain: install ## Wait until the runners have delivered everything to the lake
	$(IN_RUNNER) drain

status: install ## Show each runner's position, lag, records, objects and errors (WATCH=1 refreshes until Ctrl-C)
	$(IN_RUNNER) status $(if $(filter 1,$(WATCH)),--watch,)

crawl: install ## Catalog the lake's partitions in Glue (the local crawler; the real one on aws)
	$(CLI) crawl

analyze: install ## Crawl, then print the KPIs and write the dashboard (ENGINE=duckdb|athena)
	$(CLI) analyze --engine $(ENGINE)

backfill: install ## Bring the table's existing items into the lake as snapshot rows, resumable (SINCE=, SEGMENTS=, POLICY=1)
	$(CLI) backfill $(if $(SINCE),--since "$(SINCE)") $(if $(SEGMENTS),--segments $(SEGMENTS)) $(if $(POLICY),--policy)

verify: install ## Reconcile the lake's current state with a DynamoDB scan (exit 1 on any difference)
	$(CLI) verify

demo: up seed drain analyze verify ## up + seed + drain + analyze + verify, end to end

test: install-dev ## Run every tier: unit, emulator, aws (moto), browser, readme (a target each below)
	$(PY) -m pytest -q

test-unit: install $(VENV)/.installed-dev ## Only tests/unit: no server, fast
	$(PY) -m pytest -q -m unit

test-emulator: install-dev ## Only tests/emulator: against the embedded emulator
	$(PY) -m pytest -q -m emulator

test-aws: install $(VENV)/.installed-dev ## Only tests/aws: against moto (an AWS control-plane stand-in on 127.0.0.1)
	$(PY) -m pytest -q -m aws

test-browser: install $(VENV)/.installed-dev ## Only tests/browser: the dashboard in headless Chromium
	$(PY) -m pytest -q -m browser

test-readme: install $(VENV)/.installed-dev ## Only tests/readme: the README's commands in a fresh clone (make demo; slow)
	$(PY) -m pytest -q -m readme

lint: $(VENV)/.installed-dev ## ruff
	$(VENV)/bin/ruff check .

env: ## Print shell exports so aws / awslocal / boto3 reach the stack: eval "$(make -s env)"
	@$(CLI) env

awslocal: ## Run awslocal against the stack, e.g. make awslocal ARGS="dynamodb scan --table-name sales_orders"
	@eval "$$($(CLI) env)" && awslocal $(ARGS)

logs: ## Follow the emulator's and the runners' logs
ifeq ($(TARGET),compose)
	$(COMPOSE) logs -f
else
	@d="$${STATE_DIR:-.state}"; tail -F "$$d/emulator-$(PORT).log" "$$d"/athena-*.log "$$d"/runners/*.log
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

compact: install ## Rewrite many small lake objects into few large Parquet files (DAY=YYYY-MM-DD, TARGET_ROWS=n, GRACE=s)
	$(CLI) compact $(if $(DAY),--day $(DAY),) $(if $(TARGET_ROWS),--target-rows $(TARGET_ROWS),) $(if $(GRACE),--grace $(GRACE),)

deploy-aws: $(VENV)/.installed ## Deploy to real AWS: print the plan (account, caller, region, names), confirm unless AUTO_APPROVE=1, apply
	$(CLI) deploy-aws

destroy-aws: $(VENV)/.installed ## Delete every AWS resource tagged with this project (EMPTY=1 also deletes the buckets' objects)
	$(CLI) destroy-aws $(if $(filter 1,$(EMPTY)),--empty-buckets,)

clean: ## Remove generated state (not the virtualenvs)
	rm -rf .state results dashboard
