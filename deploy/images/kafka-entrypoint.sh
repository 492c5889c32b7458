#!/bin/bash
# Write server.properties from KAFKA_* variables (KAFKA_LOG_DIRS -> log.dirs, as the apache/kafka
# image does; KAFKA_HEAP_OPTS, KAFKA_GC_OPTS and KAFKA_OPTS are JVM settings), format the KRaft storage once,
# and run the broker in the foreground.
set -euo pipefail
conf=/opt/kafka/config/server.properties
: "${KAFKA_LOG_DIRS:=/var/lib/kafka/data}"
export KAFKA_LOG_DIRS
: >"$conf"
while IFS='=' read -r name value; do
  case "$name" in
  KAFKA_HEAP_OPTS | KAFKA_GC_OPTS | KAFKA_OPTS | KAFKA_CLUSTER_ID) continue ;;
  KAFKA_*)
    key="${name#KAFKA_}"
    key="${key,,}"
    printf '%s=%s\n' "${key//_/.}" "$value" >>"$conf"
    ;;
  esac
done < <(env)
opts=(-cp '/opt/kafka/libs/*' -Dlog4j.configuration=file:/opt/kafka/config/log4j.properties
  -Dkafka.logs.dir=/var/lib/kafka/logs -Dlog4j2.statusLoggerLevel=OFF -Djava.awt.headless=true)
mkdir -p /var/lib/kafka/logs "$KAFKA_LOG_DIRS"
if [[ ! -f "$KAFKA_LOG_DIRS/meta.properties" ]]; then
  standalone=(--standalone)
  [[ -n "${KAFKA_CONTROLLER_QUORUM_VOTERS:-}" ]] && standalone=()
  java "${opts[@]}" kafka.tools.StorageTool format --config "$conf" \
    --cluster-id "${KAFKA_CLUSTER_ID:-5L6g3nShT-eMCtK--X86sw}" "${standalone[@]}"
fi
# ZGC: G1's young pauses (tens to hundreds of ms where the cores are shared) hold every
# acks=all produce, and so ingest's answers; deploy/local/services-up.sh says more.
# shellcheck disable=SC2086 # the JVM options are word-split on purpose
exec java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} ${KAFKA_GC_OPTS:--XX:+UseZGC} ${KAFKA_OPTS:-} "${opts[@]}" kafka.Kafka "$conf"
