#!/usr/bin/env bash
# Start tollgate's cluster topology locally, without Docker:
#   * ZooKeeper (Debian's zookeeper package)      127.0.0.1:22181
#   * three Kafka brokers, KRaft, each broker+controller of one quorum
#       clients 127.0.0.1:29092,29093,29094   controllers 127.0.0.1:29192,29193,29194
#   * two ClickHouse replicas of one shard, cluster `tollgate` in remote_servers,
#     replicated through that ZooKeeper
#       native 127.0.0.1:29000 / 29001   HTTP 28123 / 28124   interserver 29009 / 29010
#
# Installs what is missing with the same steps as services-up (deploy/local/services-up.sh with
# TOLLGATE_SERVICES_PREPARE_ONLY=1: java, maven, ClickHouse, the Kafka jars) plus zookeeper.
# State, data and logs: ${TOLLGATE_SERVICES_DIR:-<repo>/.services}/cluster. Idempotent: what
# already answers is left alone, what has a live pid file is waited for. Stop with
# deploy/cluster/cluster-down.sh (by pid file). These ports overlap docker-compose.host.yml's
# (Kafka 29092, ClickHouse 29000/28123): run one or the other.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
STATE_DIR="${TOLLGATE_SERVICES_DIR:-$REPO_ROOT/.services}"
TIMEOUT="${TOLLGATE_SERVICES_TIMEOUT:-120}"
mkdir -p "$STATE_DIR/cluster"
STATE_DIR="$(cd "$STATE_DIR" && pwd)"
CL="$STATE_DIR/cluster"
LIB="$STATE_DIR/kafka/lib" # services-up's jars
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
BROKERS=(1 2 3)
REPLICAS=(1 2)
ZK_PORT=22181

log() { printf 'cluster-up: %s\n' "$*"; }
die() { printf 'cluster-up: ERROR: %s\n' "$*" >&2; exit 1; }
tcp_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
kafka_port() { echo $((29091 + $1)); }
controller_port() { echo $((29191 + $1)); }
ch_tcp_port() { echo $((28999 + $1)); }
ch_http_port() { echo $((28122 + $1)); }

# pid_alive PIDFILE PATTERN: the pid file names a live (not zombie) process whose command line
# contains PATTERN; a stale pid file is removed.
pid_alive() {
  local pid stat cmdline
  [[ -f "$1" ]] || return 1
  pid="$(<"$1")"
  stat="$(cat "/proc/$pid/stat" 2>/dev/null || true)"
  stat="${stat##*) }"
  if [[ -n "$stat" && "${stat%% *}" != Z ]]; then
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmdline" == *"$2"* ]] && return 0
  fi
  rm -f "$1"
  return 1
}

fail_with_logs() {
  printf 'cluster-up: ERROR: %s\n' "$1" >&2
  shift
  local f
  for f in "$@"; do
    [[ -s "$f" ]] && { printf '\n----- last 30 lines of %s -----\n' "$f" >&2; tail -n 30 "$f" >&2; }
  done
  exit 1
}

# zk_ready: ZooKeeper serves requests. `stat` names the server's mode only then (`ruok` answers
# imok as soon as the port is open, before the database is loaded).
zk_ready() {
  local answer
  answer="$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ZK_PORT; printf stat >&3; cat <&3" 2>/dev/null)" || return 1
  [[ "$answer" == *"Mode: "* ]]
}

# wait_zk: wait until ZooKeeper serves. ClickHouse 18.16 reads each replicated table's metadata
# from ZooKeeper while it starts and exits when ZooKeeper does not answer: a cluster-up right
# after cluster-down, with replicated tables in place, lost the replicas that way
# ("clickhouse-1 exited during startup"). So the replicas start only after this.
wait_zk() {
  local deadline=$((SECONDS + TIMEOUT))
  until zk_ready; do
    pid_alive "$CL/zookeeper/pid" QuorumPeerMain ||
      fail_with_logs "zookeeper exited during startup" "$CL/zookeeper/logs/zookeeper.out"
    ((SECONDS < deadline)) || fail_with_logs "ZooKeeper not serving after ${TIMEOUT}s" "$CL/zookeeper/logs/zookeeper.out"
    sleep 0.5
  done
}
kafka_ready() { # N: the port answers and the broker logged that it started
  tcp_open 127.0.0.1 "$(kafka_port "$1")" && grep -qF 'Kafka Server started' "$CL/kafka-$1/logs/server.log" 2>/dev/null
}
ch_ready() { [[ "$(curl -fsS --max-time 2 "http://127.0.0.1:$(ch_http_port "$1")/ping" 2>/dev/null)" == "Ok." ]]; }

# The daemons started below must not inherit the caller's descriptors: run as
# `flock LOCKFILE cluster-up.sh`, the brokers would otherwise hold that lock for as long as they
# run. Close every descriptor but stdin/out/err and bash's own script descriptor (255).
for fd in $(ls /proc/$$/fd); do
  if ((fd > 2 && fd != 255)); then eval "exec $fd>&-"; fi
done

exec 9>"$CL/.lock"
flock 9

# ---- prerequisites: services-up's steps, then ZooKeeper ------------------------------------
TOLLGATE_SERVICES_DIR="$STATE_DIR" TOLLGATE_SERVICES_PREPARE_ONLY=1 "$REPO_ROOT/deploy/local/services-up.sh" 9>&-
# shellcheck source=../local/apt.sh
source "$REPO_ROOT/deploy/local/apt.sh" # apt_install
if [[ ! -f /usr/share/java/zookeeper.jar ]]; then
  apt_install zookeeper
  # The package may start a system-wide ZooKeeper on 2181; ours is separate, leave it be.
fi

# ---- ZooKeeper ------------------------------------------------------------------------------
start_zk() {
  local d="$CL/zookeeper"
  mkdir -p "$d/data" "$d/logs"
  cat >"$d/zoo.cfg" <<EOF
tickTime=2000
dataDir=$d/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,stat
EOF
  log "starting ZooKeeper on 127.0.0.1:$ZK_PORT"
  setsid java -Xmx256m -cp "/usr/share/java/zookeeper.jar:/usr/share/java/*" \
    -Dzookeeper.log.dir="$d/logs" org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/zoo.cfg" \
    </dev/null >>"$d/logs/zookeeper.out" 2>&1 9>&- &
  echo $! >"$d/pid"
}

# ---- Kafka ----------------------------------------------------------------------------------
kafka_opts=()
set_kafka_opts() { # N
  kafka_opts=(-cp "$LIB/*" -Dlog4j.configuration="file:$REPO_ROOT/deploy/local/kafka/log4j.properties"
    -Dkafka.logs.dir="$CL/kafka-$1/logs" -Dlog4j2.statusLoggerLevel=OFF -Djava.awt.headless=true)
}

start_broker() { # N
  local n="$1" d="$CL/kafka-$n" voters="" b
  for b in "${BROKERS[@]}"; do voters+="${voters:+,}$b@127.0.0.1:$(controller_port "$b")"; done
  mkdir -p "$d/data" "$d/logs"
  cat >"$d/server.properties" <<EOF
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$(kafka_port "$n"),CONTROLLER://127.0.0.1:$(controller_port "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(kafka_port "$n")
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$d/data
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
default.replication.factor=3
min.insync.replicas=2
auto.create.topics.enable=false
num.partitions=6
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=104857600
EOF
  set_kafka_opts "$n"
  if [[ ! -f "$d/data/meta.properties" ]]; then
    log "formatting Kafka broker $n storage (cluster id $CLUSTER_ID)"
    java "${kafka_opts[@]}" kafka.tools.StorageTool format --config "$d/server.properties" \
      --cluster-id "$CLUSTER_ID" >>"$d/logs/kafka.out" 2>&1 ||
      fail_with_logs "Kafka storage format failed (broker $n)" "$d/logs/kafka.out"
  fi
  : >"$d/logs/server.log" # readiness greps this run's "started" line
  log "starting Kafka broker $n on 127.0.0.1:$(kafka_port "$n")"
  # ZGC as services-up (deploy/local/services-up.sh says why: G1's young pauses on shared cores).
  # shellcheck disable=SC2086 # KAFKA_HEAP_OPTS and KAFKA_GC_OPTS are deliberately word-split
  setsid java $KAFKA_HEAP_OPTS ${KAFKA_GC_OPTS:--XX:+UseZGC} "${kafka_opts[@]}" kafka.Kafka "$d/server.properties" \
    </dev/null >>"$d/logs/kafka.out" 2>&1 9>&- &
  echo $! >"$d/pid"
}

# ---- ClickHouse -----------------------------------------------------------------------------
start_replica() { # N
  local n="$1" d="$CL/clickhouse-$n" tmpl cmd
  mkdir -p "$d"/{etc/config.d,data,tmp,user_files,format_schemas,logs}
  tmpl="$(<"$REPO_ROOT/deploy/local/clickhouse/config.xml")"
  tmpl="${tmpl//@STATE_DIR@/$d}"
  tmpl="${tmpl//<http_port>8123<\/http_port>/<http_port>$(ch_http_port "$n")</http_port>}"
  printf '%s\n' "${tmpl//<tcp_port>9000<\/tcp_port>/<tcp_port>$(ch_tcp_port "$n")</tcp_port>}" >"$d/etc/config.xml"
  cp "$REPO_ROOT/deploy/local/clickhouse/users.xml" "$d/etc/users.xml"
  local r replicas=""
  for r in "${REPLICAS[@]}"; do
    replicas+="<replica><host>127.0.0.1</host><port>$(ch_tcp_port "$r")</port></replica>"
  done
  cat >"$d/etc/config.d/cluster.xml" <<EOF
<yandex>
    <zookeeper><node><host>127.0.0.1</host><port>$ZK_PORT</port></node></zookeeper>
    <remote_servers>
        <tollgate><shard><internal_replication>true</internal_replication>$replicas</shard></tollgate>
    </remote_servers>
    <macros><shard>1</shard><replica>replica$n</replica></macros>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <interserver_http_port>$((29008 + n))</interserver_http_port>
    <distributed_ddl><path>/clickhouse/tollgate/task_queue/ddl</path></distributed_ddl>
</yandex>
EOF
  if command -v clickhouse-server >/dev/null; then cmd=(clickhouse-server); else cmd=(clickhouse server); fi
  log "starting ClickHouse replica $n on 127.0.0.1:$(ch_tcp_port "$n") (HTTP $(ch_http_port "$n"))"
  (cd "$d" && exec setsid "${cmd[@]}" --config-file="$d/etc/config.xml" \
    </dev/null >>"$d/logs/stdout.log" 2>&1 9>&-) &
  echo $! >"$d/pid"
}

# ---- main -----------------------------------------------------------------------------------
start_ts=$SECONDS
if ! zk_ready && ! pid_alive "$CL/zookeeper/pid" QuorumPeerMain; then
  tcp_open 127.0.0.1 $ZK_PORT && die "port $ZK_PORT is taken by something that is not our ZooKeeper"
  start_zk
fi
[[ -s "$CL/cluster-id" ]] || java -cp "$LIB/*" -Dlog4j2.statusLoggerLevel=OFF kafka.tools.StorageTool random-uuid 2>/dev/null >"$CL/cluster-id"
CLUSTER_ID="$(<"$CL/cluster-id")"
for n in "${BROKERS[@]}"; do
  if ! tcp_open 127.0.0.1 "$(kafka_port "$n")" && ! pid_alive "$CL/kafka-$n/pid" kafka.Kafka; then
    start_broker "$n"
  fi
done
wait_zk # the brokers (KRaft) start meanwhile; the replicas need ZooKeeper
for n in "${REPLICAS[@]}"; do
  if ! ch_ready "$n" && ! pid_alive "$CL/clickhouse-$n/pid" clickhouse; then
    if tcp_open 127.0.0.1 "$(ch_tcp_port "$n")" || tcp_open 127.0.0.1 "$(ch_http_port "$n")"; then
      die "port $(ch_tcp_port "$n") or $(ch_http_port "$n") is taken by something that is not our ClickHouse (docker-compose.host.yml?)"
    fi
    start_replica "$n"
  fi
done

deadline=$((SECONDS + TIMEOUT))
while :; do
  waiting=()
  zk_ready || waiting+=(zookeeper)
  for n in "${BROKERS[@]}"; do kafka_ready "$n" || waiting+=("kafka-$n"); done
  for n in "${REPLICAS[@]}"; do ch_ready "$n" || waiting+=("clickhouse-$n"); done
  ((${#waiting[@]} == 0)) && break
  for w in "${waiting[@]}"; do
    pattern=clickhouse
    [[ $w == zookeeper ]] && pattern=QuorumPeerMain
    [[ $w == kafka-* ]] && pattern=kafka.Kafka
    if ! pid_alive "$CL/$w/pid" "$pattern"; then
      fail_with_logs "$w exited during startup" "$CL/$w/logs/"{server.log,kafka.out,zookeeper.out,clickhouse-server.err.log,stdout.log}
    fi
  done
  ((SECONDS >= deadline)) && fail_with_logs "not ready after ${TIMEOUT}s: ${waiting[*]}"
  sleep 0.5
done

log "ready ($((SECONDS - start_ts))s): ZooKeeper 127.0.0.1:$ZK_PORT; Kafka 127.0.0.1:29092,127.0.0.1:29093,127.0.0.1:29094;"
log "  ClickHouse cluster tollgate: 127.0.0.1:29000 (HTTP 28123), 127.0.0.1:29001 (HTTP 28124); state and logs in $CL"
log "stop with: ${TOLLGATE_SERVICES_DIR:+TOLLGATE_SERVICES_DIR=$STATE_DIR }make cluster-down"
