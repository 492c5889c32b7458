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
alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat%% *}" != Z ]]
}

stop() { # NAME PIDFILE PATTERN
  local name="$1" pidfile="$2" pattern="$3" pid cmdline waited=0
  [[ -f "$pidfile" ]] || { log "$name: not running (no pid file)"; return 0; }
  pid="$(<"$pidfile")"
  if ! [[ "$pid" =~ ^[0-9]+$ ]] || ! alive "$pid"; then
    log "$name: not running (removing stale pid file)"
    rm -f "$pidfile"
    return 0
  fi
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  if [[ "$cmdline" != *"$pattern"* ]]; then
    log "$name: pid $pid is not $name; leaving it alone, removing pid file"
    rm -f "$pidfile"
    return 0
  fi
  log "$name: stopping pid $pid (SIGTERM)"
  kill -TERM "$pid" 2>/dev/null || true
  while alive "$pid" && ((waited < GRACE_SECONDS * 5)); do sleep 0.2; waited=$((waited + 1)); done
  if alive "$pid"; then
    log "$name: still running after ${GRACE_SECONDS}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    waited=0
    while alive "$pid" && ((waited < 50)); do sleep 0.2; waited=$((waited + 1)); done
    alive "$pid" && { log "$name: pid $pid survived SIGKILL; keeping the pid file"; return 1; }
  fi
  rm -f "$pidfile"
  log "$name: stopped"
}

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
