# mdhub: the documented entry points. `make help` lists them.
SHELL := /bin/bash
# the interpreter of .venv: see .ci/pick-python (give PYTHON=... to choose another)
ifeq ($(origin PYTHON), undefined)
PYTHON := $(shell bash .ci/pick-python)
endif
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup system run test test-unit lint format bench clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

system: ## install missing system packages (Java, Maven, redis-server, venv) with apt-get
	@bash .ci/system-deps "$(PYTHON)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { echo "creating $(VENV) with $(PYTHON) ..." && $(PYTHON) -m venv $(VENV); }
	@echo "installing the Python environment into $(VENV) ..."
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

setup: system $(STAMP) ## set up everything: system packages and the Python environment (idempotent)

run: setup ## start the hub locally (Kafka, Redis, topics, worker, projector, API) with sample data
	$(BIN)/mdhub run

test: setup ## run every test against real Kafka and Redis (started and stopped by the tests)
	$(BIN)/mdhub check
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: setup ## run the unit tests only (no servers)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

lint: setup ## ruff (lint and format check) and mypy --strict
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src

format: setup ## format the code with ruff
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: setup ## measure throughput and latency (B0 loop vs. the hub) into benchmarks/RESULTS.md
	$(BIN)/python benchmarks/run.py

clean: ## remove local state (stack data, worker state, caches); keeps the venv
	rm -rf .mdhub .pytest_cache .mypy_cache .ruff_cache benchmarks/out
