#!/usr/bin/env bash
# make test-containers: the tests against a Kafka and a ClickHouse that testcontainers-go starts
# from the offline images of deploy/images, instead of the make services-up pair.
#   1. a Docker engine: the one that answers, else dockerd is started here (no bridge, no
#      iptables: containers run on the host network) and stopped by pid at the end; Debian's
#      docker.io is installed with apt first when dockerd is missing, as services-up installs
#      what it needs;
#   2. the images (deploy/images/build.sh: cached, rebuilt only when their inputs change);
#   3. go test with TOLLGATE_TEST_KAFKA/_CLICKHOUSE unset and the local images named, so
#      internal/testenv starts the containers (packages: TEST_CONTAINERS_PKGS, default ./...);
#   4. checks: no container of the run is left, and the engine has no network but host and none.
# Prints how long each step took.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
STATE="$REPO_ROOT/.services/dockerd"
PKGS="${TEST_CONTAINERS_PKGS:-./...}"

log() { printf 'test-containers: %s\n' "$*"; }
die() { printf 'test-containers: ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=../local/apt.sh
source "$REPO_ROOT/deploy/local/apt.sh" # apt_install

dockerd_pid=""
stop_dockerd() {
  [[ -n "$dockerd_pid" ]] || return 0
  log "stopping the dockerd started here (pid $dockerd_pid)"
  kill "$dockerd_pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$dockerd_pid" 2>/dev/null || return 0; sleep 0.2; done
  log "dockerd $dockerd_pid did not stop within 20 s"
}
trap stop_dockerd EXIT

start=$SECONDS
if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null; then
    apt_install docker.io
    command -v dockerd >/dev/null || die "dockerd is still missing after installing docker.io"
    # The package may start a system-wide dockerd with a bridge network; this script runs its
    # own without one (see the checks at the end), so stop that one, as services-up does with
    # the packaged clickhouse-server.
    if command -v systemctl >/dev/null && systemctl is-active --quiet docker 2>/dev/null; then
      log "stopping and disabling the packaged docker service (it makes a bridge network)"
      $([[ "$(id -u)" -ne 0 ]] && echo sudo) systemctl disable --now docker.service docker.socket || true
    fi
  fi
  mkdir -p "$STATE"
  log "starting dockerd --bridge=none --iptables=false (log: $STATE/dockerd.log)"
  # setsid: its own session, so a Ctrl-C aimed at make does not kill it mid-way; stopped above.
  setsid dockerd --bridge=none --iptables=false --ip-masq=false >>"$STATE/dockerd.log" 2>&1 </dev/null &
  dockerd_pid=$!
  for _ in $(seq 1 150); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
  docker info >/dev/null 2>&1 || die "dockerd did not answer within 30 s (log: $STATE/dockerd.log)"
  log "dockerd ready ($((SECONDS - start)) s)"
fi

"$HERE/build.sh"

export TOLLGATE_TEST_KAFKA_IMAGE="${TOLLGATE_TEST_KAFKA_IMAGE:-tollgate-local/kafka:4.1.1}"
export TOLLGATE_TEST_CLICKHOUSE_IMAGE="${TOLLGATE_TEST_CLICKHOUSE_IMAGE:-tollgate-local/clickhouse:bookworm}"
unset TOLLGATE_TEST_KAFKA TOLLGATE_TEST_CLICKHOUSE
t=$SECONDS
log "go test $PKGS with containers from $TOLLGATE_TEST_KAFKA_IMAGE and $TOLLGATE_TEST_CLICKHOUSE_IMAGE"
set +e
(cd "$REPO_ROOT" && go test -count=1 -timeout 30m ${TEST_CONTAINERS_FLAGS:-} $PKGS)
code=$?
set -e
log "go test: exit $code ($((SECONDS - t)) s)"

# A test binary that was killed cannot remove its containers (Ryuk is off): sweep them.
left="$(docker ps -aq --filter label=dev.tollgate.testenv)"
if [[ -n "$left" ]]; then
  log "removing $(wc -w <<<"$left") container(s) a test binary left behind"
  docker rm -f $left >/dev/null
fi
nets="$(docker network ls --format '{{.Name}}' | sort | tr '\n' ' ')"
log "docker networks: $nets"
[[ "$nets" == "host none " ]] || die "a network other than host and none exists: $nets"
log "done ($((SECONDS - start)) s)"
exit "$code"
