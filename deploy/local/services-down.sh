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

# shellcheck source=stop.sh
source "$HERE/stop.sh"

# Kafka first: it is the one with clients (our own services) that may still be writing.
rc=0
stop kafka "$STATE_DIR/kafka/pid" kafka.Kafka || rc=1
stop clickhouse "$STATE_DIR/clickhouse/pid" clickhouse || rc=1
log "data and logs kept in $STATE_DIR"
exit "$rc"
