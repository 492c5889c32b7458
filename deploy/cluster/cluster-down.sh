#!/usr/bin/env bash
# Stop what deploy/cluster/cluster-up.sh started, by pid file (ClickHouse replicas, Kafka
# brokers, then ZooKeeper); data and logs are kept. Uses services-down's stop logic: SIGTERM,
# a grace period, SIGKILL; a pid file naming another program is removed, that program left alone.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
STATE_DIR="${TOLLGATE_SERVICES_DIR:-$REPO_ROOT/.services}"
CL="$STATE_DIR/cluster"
GRACE_SECONDS=20

log() { printf 'cluster-down: %s\n' "$*"; }
# shellcheck source=../local/stop.sh
source "$REPO_ROOT/deploy/local/stop.sh"

rc=0
for n in 1 2; do stop "clickhouse-$n" "$CL/clickhouse-$n/pid" clickhouse || rc=1; done
# The brokers are stopped together: stopped one by one, the last one waits for a controller
# quorum that is gone and only goes at SIGKILL.
pids=()
for n in 1 2 3; do
  stop "kafka-$n" "$CL/kafka-$n/pid" kafka.Kafka &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || rc=1; done
stop zookeeper "$CL/zookeeper/pid" QuorumPeerMain || rc=1
exit $rc
