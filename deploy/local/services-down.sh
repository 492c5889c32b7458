#!/usr/bin/env bash
# Stop the local Kafka and ClickHouse started by services-up.sh.
#
# Processes are found ONLY through the pid files in the state folder
# (${TOLLGATE_SERVICES_DIR:-<repo>/.services}/{kafka,clickhouse}/pid), never by name, so
# other Kafka/ClickHouse/java processes on the machine are left alone. Each gets SIGTERM
# (clean shutdown), up to 20 s to exit, then SIGKILL. Nothing running is not an error.
# Data and logs are kept; delete the state folder for a clean slate.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
STATE_DIR="${TOLLGATE_SERVICES_DIR:-$REPO_ROOT/.services}"
GRACE_SECONDS=20

log() { printf 'services-down: %s\n' "$*"; }

# alive PID: process exists and is not a zombie.
alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat%% *}" != Z ]]
}

# stop NAME PIDFILE PATTERN: PATTERN must occur in the process's command line, so a pid
# recycled by an unrelated process after a crash/reboot is never signalled.
stop() {
  local name="$1" pidfile="$2" pattern="$3" pid cmdline
  if [[ ! -f "$pidfile" ]]; then
    log "$name: not running (no pid file)"
    return 0
  fi
  pid="$(<"$pidfile")"
  if ! [[ "$pid" =~ ^[0-9]+$ ]] || ! alive "$pid"; then
    log "$name: not running (removing stale pid file)"
    rm -f "$pidfile"
    return 0
  fi
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  if [[ "$cmdline" != *"$pattern"* ]]; then
    log "$name: pid $pid is not $name ($cmdline); leaving it alone, removing pid file"
    rm -f "$pidfile"
    return 0
  fi

  log "$name: stopping pid $pid (SIGTERM)"
  kill -TERM "$pid" 2>/dev/null || true
  local waited=0
  while alive "$pid" && ((waited < GRACE_SECONDS * 5)); do
    sleep 0.2
    waited=$((waited + 1))
  done
  if alive "$pid"; then
    log "$name: still running after ${GRACE_SECONDS}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    waited=0
    while alive "$pid" && ((waited < 50)); do
      sleep 0.2
      waited=$((waited + 1))
    done
    if alive "$pid"; then
      log "$name: pid $pid survived SIGKILL (stuck in the kernel?); keeping the pid file"
      return 1
    fi
  fi
  rm -f "$pidfile"
  log "$name: stopped"
}

# Kafka first: it is the one with clients (our own services) that may still be writing.
rc=0
stop kafka "$STATE_DIR/kafka/pid" kafka.Kafka || rc=1
stop clickhouse "$STATE_DIR/clickhouse/pid" clickhouse || rc=1
log "data and logs kept in $STATE_DIR"
exit "$rc"
