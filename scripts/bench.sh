#!/usr/bin/env bash
# `make bench`: release build of pgcdc, then scripts/bench.py on a throwaway cluster: pgcdc vs
# pg_recvlogical on two CDC workloads, and pgcdc's full load vs a raw binary COPY of a 5M-row
# table, each pgcdc run also into a local S3 endpoint (moto_server from the venv) (tables on
# stdout and in bench/RESULTS.md). Extra arguments go to bench.py, e.g.
# `scripts/bench.sh --rows-a 200000 --seconds-b 5 --rows-load 500000`,
# `make bench BENCH_ARGS=--repeat=3` or `make bench BENCH_ARGS="--targets local"` (no S3).
# The venv is $PGCDC_VENV (default .venv); $PGCDC_PYTHON overrides its interpreter.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pgcdc-target}"
CARGO="${CARGO:-cargo}"

# PostgreSQL server binaries and the .venv with pyarrow (quiet when already there).
scripts/test-deps.sh all

echo "+ $CARGO build --release" >&2
"$CARGO" build --release

PY="${PGCDC_PYTHON:-${PGCDC_VENV:-$ROOT/.venv}/bin/python}"
exec "$PY" scripts/bench.py --pgcdc "$CARGO_TARGET_DIR/release/pgcdc" "$@"
