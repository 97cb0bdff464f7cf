#!/bin/bash
# Runs as root (the server as user postgres). Prints raw-copy seconds, then pgcdc seconds, peak RSS (KiB), rows and files per worker count.
# Full-load benchmark: pgcdc (mode full-load) vs COPY (FORMAT binary) TO STDOUT > /dev/null, 5M rows.
set -euo pipefail
BIN=$(pg_config --bindir); W=$(mktemp -d); D=$W/pg; PORT=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"); PGCDC=${CARGO_TARGET_DIR:-$HOME/.cache/pgcdc-target}/release/pgcdc; PY=${PGCDC_PYTHON:-$(dirname "$0")/../.venv/bin/python}
chmod 755 $W; mkdir -p $D; chown postgres:postgres $D
R="runuser -u postgres --"
$R $BIN/initdb -D $D/data -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
cat >> $D/data/postgresql.conf <<CONF
port=$PORT
listen_addresses='127.0.0.1'
unix_socket_directories='$D'
wal_level=logical
fsync=off
max_wal_size='4GB'
shared_buffers='1GB'
CONF
$R $BIN/pg_ctl -D $D/data -l $D/log -w start >/dev/null
trap "$R $BIN/pg_ctl -D $D/data -m immediate stop >/dev/null; rm -rf $W" EXIT
PSQL="$BIN/psql -h 127.0.0.1 -p $PORT -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt"
$PSQL -c "CREATE TABLE t (id bigint PRIMARY KEY, name text, amount numeric(12,2), ts timestamptz, doc jsonb)"
$PSQL -c "INSERT INTO t SELECT g, 'name ' || g, (g % 100000) / 100.0, now() - g * interval '1 second', jsonb_build_object('k', g, 'tag', 'x' || (g % 100)) FROM generate_series(1, 5000000) g"
$PSQL -c "VACUUM ANALYZE t" ; $PSQL -c "CREATE PUBLICATION p FOR TABLE t"
echo "table size: $($PSQL -c "SELECT pg_size_pretty(pg_relation_size('t'))")"
for i in 1 2 3; do
  s=$(date +%s.%N); $PSQL -c "COPY (SELECT * FROM t) TO STDOUT (FORMAT binary)" > /dev/null; e=$(date +%s.%N)
  echo "raw-copy $(echo "$e - $s" | bc)"
done
for w in 1 2; do for i in 1 2; do
  out=$W/out; rm -rf $out
  cat > $W/cfg.toml <<CFG
[source]
url = "postgres://postgres@127.0.0.1:$PORT/postgres?sslmode=disable"
publication = "p"
slot = "s"
[pipeline]
mode = "full-load"
load_workers = $w
[[sink]]
kind = "parquet"
url = "$out"
CFG
  s=$(date +%s.%N); /usr/bin/time -f "%M" -o $W/rss $PGCDC run -c $W/cfg.toml >/dev/null 2>$W/err; e=$(date +%s.%N)
  rows=$($PY -c "import pyarrow.parquet as pq,glob; print(sum(pq.ParquetFile(f).metadata.num_rows for f in glob.glob('$out/public/t/load/*.parquet')))")
  echo "pgcdc workers=$w $(echo "$e - $s" | bc) rss_kib=$(cat $W/rss) rows=$rows files=$(ls $out/public/t/load | wc -l)"
done; done
