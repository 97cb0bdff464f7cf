# pgcdc developer entry points. `make test` is what CI runs (via .ci/run).
SHELL := /bin/bash
.DEFAULT_GOAL := test

CARGO ?= cargo
CARGO_TARGET_DIR ?= $(HOME)/.cache/pgcdc-target
export CARGO_TARGET_DIR
VENV := $(CURDIR)/.venv
# The interpreter the integration tests use for pyarrow / DuckDB / moto.
PGCDC_PYTHON ?= $(VENV)/bin/python
export PGCDC_PYTHON

# Extra arguments for the test runner, e.g. `make test TEST_ARGS=harness::` (the integration
# tests are one binary, tests/it, with a module per area: a module name filters them).
TEST_ARGS ?=

.PHONY: test deps test-deps demo bench build release clippy fmt fmt-check clean-venv

## test: install what is missing (PostgreSQL, openssl, .venv), then run every test
test: deps
	@if [ -f src/lib.rs ]; then echo "+ $(CARGO) test --doc"; $(CARGO) test --doc; fi
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		echo "+ $(CARGO) nextest run --no-fail-fast $(TEST_ARGS)"; \
		$(CARGO) nextest run --no-fail-fast $(TEST_ARGS); \
	else \
		echo "+ $(CARGO) test --no-fail-fast $(TEST_ARGS)"; \
		$(CARGO) test --no-fail-fast $(TEST_ARGS); \
	fi

deps test-deps:
	@scripts/test-deps.sh all

## demo: the embedded default (throwaway cluster -> ./pgcdc-demo)
demo:
	@scripts/test-deps.sh pg
	$(CARGO) run --release -- demo

## bench: release build, then on a throwaway cluster pgcdc vs pg_recvlogical (CDC) and pgcdc's
## full load vs a raw binary COPY, the same into S3 and with a Kinesis sink (bench/RESULTS.md)
# Extra arguments for scripts/bench.py, e.g. `make bench BENCH_ARGS="--repeat 3"` or
# `make bench BENCH_ARGS="--workloads f"` (full load only).
BENCH_ARGS ?=
bench:
	scripts/bench.sh $(BENCH_ARGS)

build:
	$(CARGO) build --all-targets

release:
	$(CARGO) build --release

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt

fmt-check:
	$(CARGO) fmt -- --check

clean-venv:
	rm -rf $(VENV)
