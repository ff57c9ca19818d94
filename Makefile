# Local development and CI entry points. Every variable can be overridden from
# the environment or the command line, e.g. `make emulator DYNAMODB_PORT=8001`.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON        ?= python3
VENV          ?= .venv
# Python deps for local runs and tests, plus any test suite's own requirements.txt.
REQUIREMENTS  ?= infra/local/requirements.txt $(wildcard tests/*/requirements.txt)
DYNAMODB_PORT ?= 8000
TABLE_NAME    ?= credits-local

VENV_PYTHON := $(VENV)/bin/python
# Every function crate's package name, from functions/*/Cargo.toml (new functions join in).
FUNCTIONS = $(foreach m,$(wildcard functions/*/Cargo.toml),$(shell sed -n 's/^name *= *"\(.*\)"/\1/p;T;q' $(m)))
# Directories searched for Python tests (test_*.py / *_test.py).
PY_TEST_DIRS := tests infra
# Quest's JS SDK suite (tests/quest, run by tests/tests/quest_sdk.rs): Node >= 20 and npm.
QUEST_SUITE  := tests/quest
QUEST_STAMP  := $(QUEST_SUITE)/node_modules/.package-lock.json

.PHONY: help venv emulator table dev test lint clean-local bench package openapi fuzz-long

help:
	@echo "make venv        Python venv in $(VENV) (moto, cargo-lambda, cfn-lint, pytest)"
	@echo "make emulator    DynamoDB emulator on 127.0.0.1:$(DYNAMODB_PORT) (foreground)"
	@echo "make table       create table $(TABLE_NAME) on the running emulator"
	@echo "make dev         emulator + table + cargo lambda watch (infra/local/dev.sh)"
	@echo "make test        cargo tests (they spawn their own emulator) + Python tests; npm ci in $(QUEST_SUITE) first"
	@echo "make lint        rustfmt check + clippy -D warnings"
	@echo "make openapi     write docs/openapi.json from the routes' declarations (make test checks it is current)"
	@echo "make fuzz-long   schemathesis over every operation for FUZZ_MAX_TIME seconds (default 600)"
	@echo "make bench       release build + cold start, latency, round trips, RSS (tests/bench/RESULTS.md)"
	@echo "make package     release zips of every function for Lambda (target/lambda/*/bootstrap.zip)"
	@echo "make clean-local remove $(VENV) and .dev"

venv: $(VENV)/.stamp
	@:

# Reinstalled when a requirements file is newer than the stamp, or when the set of
# requirements files changed (the stamp records it).
ifneq ($(shell cat $(VENV)/.stamp 2>/dev/null),$(strip $(REQUIREMENTS)))
.PHONY: $(VENV)/.stamp
endif
$(VENV)/.stamp: $(REQUIREMENTS)
	@test -x $(VENV_PYTHON) || $(PYTHON) -m venv $(VENV)
	@echo "installing $(REQUIREMENTS) into $(VENV)"
	@$(VENV_PYTHON) -m pip install --quiet --disable-pip-version-check $(addprefix -r ,$(REQUIREMENTS))
	@echo '$(strip $(REQUIREMENTS))' >$@

# npm's own record of the install is the stamp: reinstalled when package-lock.json is newer
# or node_modules is missing (like the venv's stamp).
$(QUEST_STAMP): $(QUEST_SUITE)/package-lock.json
	@echo "installing $(QUEST_SUITE)/package-lock.json into $(QUEST_SUITE)/node_modules"
	@npm ci --prefix $(QUEST_SUITE) --no-audit --no-fund --loglevel=error
	@touch $@

emulator: venv
	$(VENV_PYTHON) infra/local/dynamodb_server.py --host 127.0.0.1 --port $(DYNAMODB_PORT)

# Same fixed local region as the functions get from `make dev` (moto keeps tables per region).
table:
	TABLE_NAME=$(TABLE_NAME) \
	AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$(DYNAMODB_PORT) \
	AWS_REGION=us-east-1 \
	AWS_ACCESS_KEY_ID=local \
	AWS_SECRET_ACCESS_KEY=local \
	cargo run -q -p shared --bin create-table

dev:
	VENV=$(VENV) DYNAMODB_PORT=$(DYNAMODB_PORT) TABLE_NAME=$(TABLE_NAME) bash infra/local/dev.sh

# The Rust test harness spawns `$DYNAMODB_EMULATOR_PYTHON infra/local/dynamodb_server.py
# --port 0 --exit-on-stdin-eof` itself. Python tests run only if there are any;
# pytest's exit code 5 ("no tests collected") counts as success. Both suites run
# even if the first fails; the target fails if either did. The infra parity test
# (infra/test_infra.py) reads the table schema the Rust code prints.
TABLE_SCHEMA_JSON ?= $(CURDIR)/target/table-schema.json
test: venv $(QUEST_STAMP)
	@status=0; rm -rf target/dynamodb-actions; \
	DYNAMODB_EMULATOR_PYTHON="$(CURDIR)/$(VENV_PYTHON)" cargo test --workspace --locked --no-fail-fast || status=1; \
	dirs=$$(find $(PY_TEST_DIRS) -type f \( -name 'test_*.py' -o -name '*_test.py' \) \
	          -not -path '*/target/*' -not -path '*/.venv/*' 2>/dev/null | xargs -r dirname | sort -u || true); \
	if [[ -n "$$dirs" ]]; then \
	  mkdir -p target; \
	  cargo run -q --locked -p shared --bin create-table -- --print-schema >$(TABLE_SCHEMA_JSON) || status=1; \
	  rc=0; TABLE_SCHEMA_JSON=$(TABLE_SCHEMA_JSON) PYTHONDONTWRITEBYTECODE=1 \
	    $(VENV_PYTHON) -m pytest -q -p no:cacheprovider --import-mode=importlib $$dirs || rc=$$?; \
	  if [[ $$rc -ne 0 && $$rc -ne 5 ]]; then status=1; fi; \
	fi; \
	exit $$status

# The OpenAPI document, generated from every function's route declarations; the `auth`
# function serves this file at /api/openapi.json, and tests/tests/openapi.rs fails when it is stale.
openapi:
	cargo run -q --locked -p integration-tests --bin openapi >docs/openapi.json.tmp
	mv docs/openapi.json.tmp docs/openapi.json

# The long fuzz (never part of `make test`, which runs the same test with a small budget):
# schemathesis against the local stack, FUZZ_MAX_EXAMPLES per operation within FUZZ_MAX_TIME
# seconds, seed FUZZ_SEED.
FUZZ_MAX_TIME     ?= 600
FUZZ_MAX_EXAMPLES ?= 100000
FUZZ_SEED         ?= $(shell date +%s)
fuzz-long: venv
	FUZZ_MAX_TIME=$(FUZZ_MAX_TIME) FUZZ_MAX_EXAMPLES=$(FUZZ_MAX_EXAMPLES) FUZZ_SEED=$(FUZZ_SEED) \
	DYNAMODB_EMULATOR_PYTHON="$(CURDIR)/$(VENV_PYTHON)" \
	  cargo test --locked -p integration-tests --test fuzz -- --nocapture

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

clean-local:
	rm -rf $(VENV) .dev

# Benchmarks (never part of `make test`): release binaries of every crate under functions/
# (package names read from functions/*/Cargo.toml, so new functions are included), the
# hello-world baseline and create-table; then tests/bench/bench.py prints the table and
# writes tests/bench/RESULTS.md. Knobs: BENCH_RUNS, BENCH_WARM, BENCH_PROCS, BENCH_FIRST.
.PHONY: bench
bench: venv
	cargo build --release --locked $(addprefix -p ,$(FUNCTIONS) bench-hello shared) --bins
	PYTHONDONTWRITEBYTECODE=1 $(VENV_PYTHON) tests/bench/bench.py

# Release zips for Lambda (provided.al2023, `bootstrap` inside), one per crate under
# functions/, in target/lambda/<function>/bootstrap.zip. This machine builds x86_64 only (the
# aarch64 std cannot be downloaded here); where `rustup target add aarch64-unknown-linux-gnu`
# works, `make package ARCH=arm64` builds what the template deploys by default.
ARCH ?= x86-64
.PHONY: package
package: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release --locked --$(ARCH) --output-format zip \
	  $(addprefix -p ,$(FUNCTIONS))
	@ls -l target/lambda/*/bootstrap.zip
