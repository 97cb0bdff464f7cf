#!/usr/bin/env bash
# Installs what the tests need and is missing; idempotent and quiet when all is there.
#
#   scripts/test-deps.sh          PostgreSQL server, openssl, chromium, python venv (.venv) with tests/py/requirements.txt
#   scripts/test-deps.sh pg       only the PostgreSQL server binaries (for `make demo`)
#
# System packages come from apt and need root; as a normal user a missing package is an
# error that says what to install. The venv is re-installed when the requirements change
# (stamp file keyed on their hash and the interpreter version) or an import fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PGCDC_VENV:-$ROOT/.venv}"
REQS="$ROOT/tests/py/requirements.txt"
WHAT="${1:-all}"

log() { echo "test-deps: $*" >&2; }
die() { echo "test-deps: ERROR: $*" >&2; exit 1; }

APT_UPDATED=0
apt_install() {
    if [ "$(id -u)" != 0 ]; then
        die "missing: $*. Install it as root: sudo apt-get update && sudo apt-get install -y $*"
    fi
    command -v apt-get >/dev/null 2>&1 || die "missing: $* and there is no apt-get; install it with your package manager"
    export DEBIAN_FRONTEND=noninteractive
    if [ "$APT_UPDATED" = 0 ]; then
        log "apt-get update"
        apt-get update -qq || apt-get update
        APT_UPDATED=1
    fi
    log "apt-get install -y $*"
    apt-get install -y -q "$@"
}

have_pg_server() {
    local bindir=""
    if command -v pg_config >/dev/null 2>&1; then
        bindir="$(pg_config --bindir 2>/dev/null || true)"
        if [ -n "$bindir" ] && [ -x "$bindir/initdb" ] && [ -x "$bindir/pg_ctl" ]; then
            return 0
        fi
    fi
    local d
    for d in /usr/lib/postgresql/*/bin; do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/psql" ]; then
            return 0
        fi
    done
    return 1
}

ensure_pg() {
    if ! have_pg_server; then
        apt_install postgresql postgresql-contrib
        have_pg_server || die "PostgreSQL installed but initdb/pg_ctl still not found under /usr/lib/postgresql/*/bin"
    fi
    if [ "$(id -u)" = 0 ] && ! id -u postgres >/dev/null 2>&1; then
        # Binaries without the Debian packaging's user (e.g. a custom build): tests run the
        # server as `postgres` when they run as root.
        log "creating system user postgres"
        useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
    command -v runuser >/dev/null 2>&1 || [ "$(id -u)" != 0 ] || apt_install util-linux
}

# Headless Chromium renders `pgcdc dms compare --format html` in tests/it/dms_compare.rs.
ensure_chromium() {
    command -v chromium >/dev/null 2>&1 || apt_install chromium
}

ensure_openssl() {
    command -v openssl >/dev/null 2>&1 || apt_install openssl
}

venv_ok() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1
}

imports_ok() {
    "$VENV/bin/python" - <<'PY' >/dev/null 2>&1
import pyarrow, pyarrow.parquet, duckdb, boto3, aws_kinesis_agg, moto, moto.server, flask, awscli
PY
}

ensure_venv() {
    command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
    if ! venv_ok; then
        rm -rf "$VENV"
        log "creating virtualenv $VENV"
        if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
            rm -rf "$VENV"
            # Debian's python3 needs python3-venv for ensurepip.
            apt_install python3-venv
            python3 -m venv "$VENV"
        fi
    fi
    local key stamp
    key="$( { cat "$REQS"; "$VENV/bin/python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-16)"
    stamp="$VENV/requirements-$key.stamp"
    if [ -f "$stamp" ] && imports_ok; then
        return 0
    fi
    log "installing Python test requirements into $VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
    "$VENV/bin/python" -m pip install --quiet -r "$REQS"
    imports_ok || {
        "$VENV/bin/python" -c 'import pyarrow, duckdb, boto3, aws_kinesis_agg, moto.server'
        die "the venv's packages do not import"
    }
    rm -f "$VENV"/requirements-*.stamp
    touch "$stamp"
}

case "$WHAT" in
    pg) ensure_pg ;;
    all)
        ensure_pg
        ensure_openssl
        ensure_chromium
        ensure_venv
        ;;
    *) die "unknown argument: $WHAT (use: pg | all)" ;;
esac
