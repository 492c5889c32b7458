#!/usr/bin/env bash
# Start the local services tollgate needs, without Docker:
#   * Apache Kafka 4.x, KRaft single node (combined broker + controller)
#       clients: 127.0.0.1:9092   controller: 127.0.0.1:9093
#   * ClickHouse server
#       native: 127.0.0.1:9000    HTTP: 127.0.0.1:8123   user "default", no password
#
# Missing prerequisites (java, maven, clickhouse) are installed with apt; the Kafka jars come
# from Maven Central via deploy/local/kafka/pom.xml (cached in ~/.m2).
# Everything the services write lives under the state folder:
#   ${TOLLGATE_SERVICES_DIR:-<repo>/.services}/{kafka,clickhouse}
#
# Idempotent: if both services already answer it prints where they live and returns at once;
# otherwise it starts whichever is missing and waits (TOLLGATE_SERVICES_TIMEOUT, default 90 s)
# until both are ready (or only the one TOLLGATE_SERVICES_WAIT names: kafka or clickhouse). Stop
# them with deploy/local/services-down.sh (kills by pid file).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
STATE_DIR="${TOLLGATE_SERVICES_DIR:-$REPO_ROOT/.services}"
TIMEOUT="${TOLLGATE_SERVICES_TIMEOUT:-90}"

mkdir -p "$STATE_DIR"
STATE_DIR="$(cd "$STATE_DIR" && pwd)" # absolute: it ends up inside config files
KAFKA_DIR="$STATE_DIR/kafka"
CH_DIR="$STATE_DIR/clickhouse"

# Ports can be moved so a second, private pair of services (make chaos) runs beside the shared
# one: TOLLGATE_SERVICES_{KAFKA_PORT,KAFKA_CONTROLLER_PORT,CLICKHOUSE_TCP_PORT,CLICKHOUSE_HTTP_PORT}.
KAFKA_HOST=127.0.0.1 KAFKA_PORT="${TOLLGATE_SERVICES_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${TOLLGATE_SERVICES_KAFKA_CONTROLLER_PORT:-9093}"
CH_HOST=127.0.0.1 CH_HTTP_PORT="${TOLLGATE_SERVICES_CLICKHOUSE_HTTP_PORT:-8123}" CH_TCP_PORT="${TOLLGATE_SERVICES_CLICKHOUSE_TCP_PORT:-9000}"

# Kafka 4.x needs Java 17+. The heap is kept modest: the box has 2 cores and also runs
# ClickHouse and the test suite.
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms512m -Xmx1g}"
# ZGC, not G1: G1's young collections stop the broker for 25-300 ms on a 2-core box whose other
# processes take the cores the two GC workers need (their card scanning is stretched by the wait),
# two or three times a second under load, and every produce waiting for acks=all waits that long:
# that was ingest's p99 (docs/performance.md, docs/operations.md "Kafka's garbage collector"). ZGC's pauses are under a
# millisecond; its marking and relocation run beside the broker's threads instead.
# gc.log records every pause (safepoint lines) so a slow produce can be matched with the broker.
KAFKA_GC_OPTS="${KAFKA_GC_OPTS:--XX:+UseZGC}"

log() { printf 'services-up: %s\n' "$*"; }
die() { printf 'services-up: ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------------------

# tcp_open HOST PORT: true if something accepts a TCP connection (bash's /dev/tcp, so no
# netcat needed). `timeout` guards against a SYN that is silently dropped.
tcp_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

# clickhouse_ready: the HTTP interface answers /ping with "Ok.".
clickhouse_ready() {
  local body
  body="$(curl -fsS --max-time 2 "http://$CH_HOST:$CH_HTTP_PORT/ping" 2>/dev/null)" || return 1
  [[ "$body" == "Ok." ]]
}

# kafka_ready: the client listener accepts connections and, when we launched the broker in
# this run, it has also logged "Kafka Server started" (the socket opens a moment before the
# broker has caught up with the metadata log and can serve requests). KAFKA_LOG_OFFSET is
# the size of server.log before our launch, so a line from an earlier run does not count.
KAFKA_LOG_OFFSET=""
kafka_ready() {
  tcp_open "$KAFKA_HOST" "$KAFKA_PORT" || return 1
  [[ -z "$KAFKA_LOG_OFFSET" ]] && return 0
  # Process substitution rather than a pipe: with pipefail, `tail | grep -q` fails when grep
  # exits early and tail dies of SIGPIPE on a long log.
  grep -qF 'Kafka Server started' < <(tail -c "+$((KAFKA_LOG_OFFSET + 1))" "$KAFKA_DIR/logs/server.log" 2>/dev/null)
}

# pid_alive PIDFILE [PATTERN]: true if the pid file names a running process whose command
# line contains PATTERN (so a pid recycled by an unrelated process does not count). A stale
# pid file is removed. No PATTERN for a process we have just forked: until it has exec'd,
# its command line is still this script's.
pid_alive() {
  local pidfile="$1" pattern="${2:-}" pid stat cmdline
  [[ -f "$pidfile" ]] || return 1
  pid="$(<"$pidfile")"
  if [[ "$pid" =~ ^[0-9]+$ ]]; then
    # /proc/PID/stat is "pid (comm) STATE ...": a server that died while we wait is our
    # (unreaped) child, i.e. a zombie, which kill -0 would still report as alive.
    stat="$(cat "/proc/$pid/stat" 2>/dev/null || true)"
    stat="${stat##*) }"
  fi
  if [[ -n "${stat:-}" && "${stat%% *}" != Z ]]; then
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmdline" == *"$pattern"* ]] && return 0
  fi
  rm -f "$pidfile"
  return 1
}

# fail_with_logs MESSAGE LOGFILE...: report, show the end of each log, exit non-zero.
fail_with_logs() {
  local what="$1"
  shift
  printf 'services-up: ERROR: %s\n' "$what" >&2
  local f
  for f in "$@"; do
    if [[ -s "$f" ]]; then
      printf '\n----- last 30 lines of %s -----\n' "$f" >&2
      tail -n 30 "$f" >&2
    fi
  done
  exit 1
}

print_locations() {
  cat <<EOF
services-up: Kafka      127.0.0.1:$KAFKA_PORT (controller 127.0.0.1:$KAFKA_CONTROLLER_PORT)
               data: $KAFKA_DIR/data
               logs: $KAFKA_DIR/logs/server.log (also controller.log, kafka.out)
               jars: $KAFKA_DIR/lib   e.g. java -cp '$KAFKA_DIR/lib/*' org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:$KAFKA_PORT --list
services-up: ClickHouse 127.0.0.1:$CH_TCP_PORT (native), http://127.0.0.1:$CH_HTTP_PORT (HTTP), user default, no password
               data: $CH_DIR/data
               logs: $CH_DIR/logs/clickhouse-server.log (+ .err.log, stdout.log)
services-up: stop with: ${TOLLGATE_SERVICES_DIR:+TOLLGATE_SERVICES_DIR=$STATE_DIR }make services-down
EOF
}

# TOLLGATE_SERVICES_PREPARE_ONLY=1: install the prerequisites and fetch the Kafka jars into
# $STATE_DIR/kafka/lib, start nothing (deploy/cluster/cluster-up.sh builds on these steps).
PREPARE_ONLY="${TOLLGATE_SERVICES_PREPARE_ONLY:-0}"

# Fast path, before taking the lock or touching anything.
if [[ $PREPARE_ONLY != 1 ]] && tcp_open "$KAFKA_HOST" "$KAFKA_PORT" && clickhouse_ready; then
  log "Kafka and ClickHouse are already up."
  print_locations
  exit 0
fi

# Serialise concurrent invocations (e.g. two `make services-up` in parallel test jobs).
# The lock fd is closed (9>&-) for the servers we launch so they do not hold it forever.
exec 9>"$STATE_DIR/.lock"
flock 9

# ---------------------------------------------------------------------------------------
# Prerequisites
# ---------------------------------------------------------------------------------------

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  command -v sudo >/dev/null || die "need root (or sudo) to apt-get install missing packages"
  SUDO="sudo"
fi

# shellcheck source=apt.sh
source "$HERE/apt.sh" # apt_install

java_major() {
  # `java -version` prints e.g.: openjdk version "17.0.15" 2025-04-15
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1
}

ensure_prerequisites() {
  local missing=()
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  command -v curl >/dev/null || missing+=(curl)
  local ch_installed=0
  if ! command -v clickhouse-server >/dev/null && ! command -v clickhouse >/dev/null; then
    missing+=(clickhouse-server clickhouse-client)
    ch_installed=1
  fi
  if ((${#missing[@]})); then
    apt_install "${missing[@]}"
  fi
  local major
  major="$(java_major)"
  [[ -n "$major" && "$major" -ge 17 ]] || die "Kafka 4.x needs Java 17+, found: $(java -version 2>&1 | head -n1)"

  # The Debian package may start its own system-wide server (on the same ports 8123/9000,
  # with /etc/clickhouse-server) right after installation. We run our own instance, so stop
  # that one -- but only when this script installed the package just now.
  if ((ch_installed)) && command -v systemctl >/dev/null &&
    systemctl is-active --quiet clickhouse-server 2>/dev/null; then
    log "stopping and disabling the packaged clickhouse-server service (it would take our ports)"
    $SUDO systemctl disable --now clickhouse-server || true
  fi
}

# ---------------------------------------------------------------------------------------
# Kafka
# ---------------------------------------------------------------------------------------

# ensure_kafka_jars: populate $KAFKA_DIR/lib from pom.xml; redone only when pom.xml changes.
ensure_kafka_jars() {
  local pom="$HERE/kafka/pom.xml" lib="$KAFKA_DIR/lib" stamp sum
  stamp="$lib/.pom.sha256"
  sum="$(sha256sum "$pom" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(<"$stamp")" == "$sum" ]] && compgen -G "$lib/kafka_2.13-*.jar" >/dev/null; then
    return 0
  fi
  log "fetching Kafka jars with Maven into $lib"
  local tmp="$KAFKA_DIR/lib.tmp" mvn_log="$KAFKA_DIR/logs/maven.log"
  rm -rf "$tmp"
  mkdir -p "$KAFKA_DIR/logs"
  : >"$mvn_log"
  # Output goes to a log (Debian's Maven litters even -q output with colour escapes).
  mvn_run() {
    mvn -B -f "$pom" "$@" >>"$mvn_log" 2>&1 ||
      fail_with_logs "maven failed: mvn $*" "$mvn_log"
  }
  mvn_run dependency:copy-dependencies -DoutputDirectory="$tmp"

  # Maven's nearest-wins resolution picks slf4j-api 1.7.x (what Kafka itself declares), but
  # slf4j-reload4j 2.x is an SLF4J 2 provider that 1.7.x cannot see: the broker would log
  # NOTHING ("Defaulting to no-operation (NOP) logger"). Replace the API jar with the one
  # matching the binding (SLF4J 2 is call-compatible with 1.7 callers).
  local binding api_version
  binding="$(compgen -G "$tmp/slf4j-reload4j-*.jar" | head -n1 || true)"
  if [[ -n "$binding" ]]; then
    api_version="$(basename "$binding" .jar)"
    api_version="${api_version#slf4j-reload4j-}"
    if ! [[ -f "$tmp/slf4j-api-$api_version.jar" ]]; then
      rm -f "$tmp"/slf4j-api-*.jar
      mvn_run dependency:copy -Dartifact="org.slf4j:slf4j-api:$api_version" -DoutputDirectory="$tmp"
    fi
  fi

  compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || die "Maven did not produce kafka_2.13-*.jar in $tmp"
  echo "$sum" >"$tmp/.pom.sha256"
  rm -rf "$lib"
  mv "$tmp" "$lib"
}

# JVM options shared by the broker and the storage tool: classpath and logging.
# kafka.logs.dir feeds ${kafka.logs.dir} in log4j.properties. log4j-core (log4j 2) is also
# on the classpath -- Kafka 4 pokes it for its logging MBean -- and, having no config of its
# own, would print a harmless "Reconfiguration failed" error; silence its status logger.
kafka_java_opts=()
set_kafka_java_opts() {
  kafka_java_opts=(
    -cp "$KAFKA_DIR/lib/*"
    -Dlog4j.configuration="file:$HERE/kafka/log4j.properties"
    -Dkafka.logs.dir="$KAFKA_DIR/logs"
    -Dlog4j2.statusLoggerLevel=OFF
    -Djava.awt.headless=true
  )
}

start_kafka() {
  ensure_kafka_jars
  mkdir -p "$KAFKA_DIR/data" "$KAFKA_DIR/logs"
  set_kafka_java_opts

  # Render the broker config (cheap, and picks up template edits on every start).
  local tmpl
  tmpl="$(<"$HERE/kafka/server.properties.tmpl")"
  tmpl="${tmpl//@DATA_DIR@/$KAFKA_DIR/data}"
  tmpl="${tmpl//127.0.0.1:9092/127.0.0.1:$KAFKA_PORT}"
  printf '%s\n' "${tmpl//127.0.0.1:9093/127.0.0.1:$KAFKA_CONTROLLER_PORT}" >"$KAFKA_DIR/server.properties"

  # KRaft storage must be formatted once, with a fresh cluster id. --standalone makes this
  # node the single voter of a dynamic quorum (goes with controller.quorum.bootstrap.servers).
  if [[ ! -f "$KAFKA_DIR/data/meta.properties" ]]; then
    local cluster_id
    cluster_id="$(java "${kafka_java_opts[@]}" kafka.tools.StorageTool random-uuid)"
    log "formatting Kafka storage (cluster id $cluster_id)"
    java "${kafka_java_opts[@]}" kafka.tools.StorageTool format \
      --config "$KAFKA_DIR/server.properties" --cluster-id "$cluster_id" --standalone \
      >>"$KAFKA_DIR/logs/kafka.out" 2>&1 ||
      fail_with_logs "Kafka storage format failed" "$KAFKA_DIR/logs/kafka.out"
  fi

  KAFKA_LOG_OFFSET="$(stat -c %s "$KAFKA_DIR/logs/server.log" 2>/dev/null || echo 0)"
  log "starting Kafka (logs: $KAFKA_DIR/logs)"
  # setsid: own session, so the broker outlives the calling shell/make and is not hit by a
  # Ctrl-C or process-group kill aimed at it. No job control here, so setsid execs in place
  # and $! is the JVM's pid. All fds redirected so callers piping our output do not hang.
  # shellcheck disable=SC2086 # KAFKA_HEAP_OPTS and KAFKA_GC_OPTS are deliberately word-split
  setsid java $KAFKA_HEAP_OPTS $KAFKA_GC_OPTS \
    -Xlog:gc,safepoint:file="$KAFKA_DIR/logs/gc.log":utctime,uptime,level,tags:filecount=3,filesize=20m \
    "${kafka_java_opts[@]}" kafka.Kafka "$KAFKA_DIR/server.properties" \
    </dev/null >>"$KAFKA_DIR/logs/kafka.out" 2>&1 9>&- &
  echo $! >"$KAFKA_DIR/pid"
}

# ---------------------------------------------------------------------------------------
# ClickHouse
# ---------------------------------------------------------------------------------------

start_clickhouse() {
  mkdir -p "$CH_DIR"/{etc,data,tmp,user_files,format_schemas,logs}

  # The committed config.xml is a template: point every path into the state folder. The
  # rendered copy lives in $CH_DIR/etc so the server never writes next to the repo files.
  local tmpl
  tmpl="$(<"$HERE/clickhouse/config.xml")"
  tmpl="${tmpl//@STATE_DIR@/$CH_DIR}"
  tmpl="${tmpl//<http_port>8123</http_port>/<http_port>$CH_HTTP_PORT</http_port>}"
  printf '%s\n' "${tmpl//<tcp_port>9000</tcp_port>/<tcp_port>$CH_TCP_PORT</tcp_port>}" >"$CH_DIR/etc/config.xml"
  cp "$HERE/clickhouse/users.xml" "$CH_DIR/etc/users.xml"

  # Debian ships `clickhouse-server`; official packages ship one `clickhouse` multi-tool.
  local cmd
  if command -v clickhouse-server >/dev/null; then
    cmd=(clickhouse-server)
  else
    cmd=(clickhouse server)
  fi
  # ClickHouse 18.16 runs fine as root. Newer releases refuse to start when the effective
  # user differs from the owner of the data directory; the state folder is created by the
  # user running this script, so that holds for root and non-root alike.
  log "starting ClickHouse (logs: $CH_DIR/logs)"
  # Run from $CH_DIR so nothing (relative paths, core dumps) lands in the caller's cwd.
  (cd "$CH_DIR" && exec setsid "${cmd[@]}" --config-file="$CH_DIR/etc/config.xml" \
    </dev/null >>"$CH_DIR/logs/stdout.log" 2>&1 9>&-) &
  echo $! >"$CH_DIR/pid"
}

# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------

kafka_logs=("$KAFKA_DIR/logs/server.log" "$KAFKA_DIR/logs/kafka.out")
ch_logs=("$CH_DIR/logs/clickhouse-server.err.log" "$CH_DIR/logs/stdout.log")

start_ts=$SECONDS
ensure_prerequisites
if [[ $PREPARE_ONLY == 1 ]]; then
  ensure_kafka_jars
  exit 0
fi

# Start whatever is neither answering nor already starting (a live pid file means an
# earlier run launched it and it may still be booting: wait for it instead).
started_kafka=0 started_ch=0
if ! tcp_open "$KAFKA_HOST" "$KAFKA_PORT" && ! pid_alive "$KAFKA_DIR/pid" kafka.Kafka; then
  start_kafka
  started_kafka=1
fi
if ! clickhouse_ready && ! pid_alive "$CH_DIR/pid" clickhouse; then
  if tcp_open "$CH_HOST" "$CH_HTTP_PORT" || tcp_open "$CH_HOST" "$CH_TCP_PORT"; then
    die "port $CH_HTTP_PORT or $CH_TCP_PORT is taken by something that is not a ready ClickHouse (a packaged clickhouse-server service?)"
  fi
  start_clickhouse
  started_ch=1
fi

# TOLLGATE_SERVICES_WAIT=kafka or clickhouse waits for that one alone: make chaos restarts one
# while its fault schedule may be keeping the other down on purpose.
WAIT_FOR="${TOLLGATE_SERVICES_WAIT:-both}"
[[ $WAIT_FOR == both || $WAIT_FOR == kafka || $WAIT_FOR == clickhouse ]] ||
  die "TOLLGATE_SERVICES_WAIT must be kafka or clickhouse, not '$WAIT_FOR'"
deadline=$((SECONDS + TIMEOUT))
next_report=$((SECONDS + 5))
while :; do
  k=starting c=starting
  { [[ $WAIT_FOR == clickhouse ]] || kafka_ready; } && k=ready
  { [[ $WAIT_FOR == kafka ]] || clickhouse_ready; } && c=ready
  [[ $k == ready && $c == ready ]] && break

  # A server we launched that has already exited will not come up: fail fast.
  if [[ $k != ready ]] && ((started_kafka)) && ! pid_alive "$KAFKA_DIR/pid"; then
    fail_with_logs "Kafka exited during startup" "${kafka_logs[@]}"
  fi
  if [[ $c != ready ]] && ((started_ch)) && ! pid_alive "$CH_DIR/pid"; then
    fail_with_logs "ClickHouse exited during startup" "${ch_logs[@]}"
  fi
  if ((SECONDS >= deadline)); then
    # Left running on purpose (it may just be slow); `make services-down` stops it.
    [[ $k != ready ]] && fail_with_logs "Kafka not ready after ${TIMEOUT}s" "${kafka_logs[@]}"
    fail_with_logs "ClickHouse not ready after ${TIMEOUT}s" "${ch_logs[@]}"
  fi
  if ((SECONDS >= next_report)); then
    log "waiting... kafka: $k, clickhouse: $c ($((SECONDS - start_ts))s)"
    next_report=$((SECONDS + 5))
  fi
  sleep 0.5
done

log "Kafka and ClickHouse are ready ($((SECONDS - start_ts))s)."
print_locations
