#!/usr/bin/env bash
# make test-cluster-restart: the cluster comes back after cluster-down once replicated tables
# exist. ClickHouse 18.16 reads each replicated table's metadata from ZooKeeper while it starts;
# a cluster-up right after cluster-down once failed there ("clickhouse-1 exited during startup":
# ZooKeeper did not answer yet). Steps: cluster-up; a replicated table ON CLUSTER with a row;
# cluster-down; cluster-up; both replicas answer and hold the row; the table is dropped; and the
# cluster is brought down again unless it was up before. Needs cluster-up's RAM (~3 GB).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DB=tollgate_restart_check

log() { printf 'cluster-restart: %s\n' "$*"; }
die() { printf 'cluster-restart: ERROR: %s\n' "$*" >&2; exit 1; }
# q PORT SQL: run SQL on the replica whose HTTP interface is on PORT.
q() { curl -fsS --max-time 60 "http://127.0.0.1:$1/" --data-binary "$2"; }

was_up=0
q 28123 'SELECT 1' >/dev/null 2>&1 && was_up=1
finish() {
  q 28123 "DROP DATABASE IF EXISTS $DB ON CLUSTER tollgate" >/dev/null 2>&1 || true
  ((was_up)) || "$HERE/cluster-down.sh" || true
}
trap finish EXIT

"$HERE/cluster-up.sh"
q 28123 "CREATE DATABASE IF NOT EXISTS $DB ON CLUSTER tollgate" >/dev/null
q 28123 "CREATE TABLE IF NOT EXISTS $DB.t ON CLUSTER tollgate (x UInt8)
  ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/$DB/t', '{replica}') ORDER BY x" >/dev/null
q 28123 "INSERT INTO $DB.t VALUES (1)"
log "replicated table $DB.t created with a row; restarting the cluster"

"$HERE/cluster-down.sh"
"$HERE/cluster-up.sh" || die "cluster-up failed right after cluster-down with a replicated table in place"

for port in 28123 28124; do
  n=""
  for _ in $(seq 1 60); do # replica 2 fetches the part from replica 1 after both are back
    n="$(q "$port" "SELECT count() FROM $DB.t" 2>/dev/null || true)"
    [[ "$n" == 1 ]] && break
    sleep 1
  done
  [[ "$n" == 1 ]] || die "the replica on HTTP $port holds $n rows of $DB.t after the restart, want 1"
done
log "ok: both replicas came back and hold the row"
