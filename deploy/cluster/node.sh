#!/usr/bin/env bash
# Take one node of the cluster topology (deploy/cluster/cluster-up.sh) down, by its pid file:
#
#   deploy/cluster/node.sh kill broker|clickhouse N   # SIGKILL, as a crash or an OOM kill would
#   deploy/cluster/node.sh stop broker|clickhouse N   # graceful: SIGTERM, then SIGKILL after 20 s
#
# Brokers are 1-3 (127.0.0.1:29092-29094), ClickHouse replicas 1-2 (native 29000/29001). Start
# the node again with deploy/cluster/cluster-up.sh, which starts whatever is not running. The
# state directory is the one cluster-up uses: ${TOLLGATE_SERVICES_DIR:-<repo>/.services}/cluster.
# Only the process named by the pid file is signalled, and only when its command line is that
# node's program (deploy/local/stop.sh's rule), so a recycled pid is left alone.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
CL="${TOLLGATE_SERVICES_DIR:-$REPO_ROOT/.services}/cluster"
GRACE_SECONDS=20

log() { printf 'node: %s\n' "$*"; }
usage() { printf 'usage: %s kill|stop broker|clickhouse N\n' "$0" >&2; exit 2; }
# shellcheck source=../local/stop.sh
source "$REPO_ROOT/deploy/local/stop.sh"

(($# == 3)) || usage
action="$1" kind="$2" n="$3"
case "$kind:$n" in
  broker:[123]) name="kafka-$n" pattern=kafka.Kafka ;;
  clickhouse:[12]) name="clickhouse-$n" pattern=clickhouse ;;
  *) usage ;;
esac
pidfile="$CL/$name/pid"

case "$action" in
  stop) stop "$name" "$pidfile" "$pattern" ;;
  kill)
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    if ! [[ "$pid" =~ ^[0-9]+$ ]] || ! alive "$pid"; then
      log "$name: not running"
      exit 0
    fi
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    if [[ "$cmdline" != *"$pattern"* ]]; then
      log "$name: pid $pid is not $name; leaving it alone"
      exit 1
    fi
    log "$name: SIGKILL pid $pid"
    kill -KILL "$pid"
    # The pid file stays, as after a real crash; cluster-up.sh sees it is stale.
    for _ in $(seq 50); do alive "$pid" || exit 0; sleep 0.2; done
    log "$name: pid $pid survived SIGKILL"
    exit 1
    ;;
  *) usage ;;
esac
