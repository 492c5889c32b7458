#!/usr/bin/env bash
# Build, without any container registry, the images the Docker paths use:
#   tollgate-local/debian:bookworm      Debian base: debootstrap --variant=minbase + docker import
#   tollgate-local/kafka:4.1.1          JRE (apt, in that base) + the broker jars make services-up fetched
#   tollgate-local/clickhouse:bookworm  Debian's clickhouse-server (apt, in that base)
#   tollgate:dev                        the static tollgate binary, FROM scratch
# The test harness runs the first two when TOLLGATE_TEST_KAFKA_IMAGE / TOLLGATE_TEST_CLICKHOUSE_IMAGE
# name them (make test-containers does), and docker-compose.host.yml runs all of them.
#
# Idempotent and cached: the base is rebuilt only when it is missing; every other image carries
# the hash of its inputs as a label and is rebuilt only when that hash changes. Debian packages
# and Maven jars come from their usual mirrors (builds use the host network; no bridge is made).
# Prints how long each step took. Needs a running Docker engine and debootstrap (installed with
# apt when missing).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="${TOLLGATE_IMAGES_CACHE:-$REPO_ROOT/.services/images}"
BASE=tollgate-local/debian:bookworm
KAFKA=tollgate-local/kafka:4.1.1
CLICKHOUSE=tollgate-local/clickhouse:bookworm
TOLLGATE=tollgate:dev
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

log() { printf 'images: %s\n' "$*"; }
exec 3>&1 # timed reports here even when its command's output is redirected
die() { printf 'images: ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=../local/apt.sh
source "$REPO_ROOT/deploy/local/apt.sh" # apt_install
mkdir -p "$CACHE"
docker info >/dev/null 2>&1 || die "no Docker engine answers (start dockerd, or run make test-containers, which does)"

# timed NAME CMD...: run CMD and report its wall time.
timed() {
  local name="$1" start=$SECONDS
  shift
  "$@"
  log "$name: $((SECONDS - start)) s" >&3
}

# label IMAGE: the inputs hash an existing image was built from ("" if none).
label() { docker image inspect -f '{{index .Config.Labels "dev.tollgate.inputs"}}' "$1" 2>/dev/null || true; }

build_base() {
  if docker image inspect "$BASE" >/dev/null 2>&1; then
    log "$BASE: cached"
    return
  fi
  command -v debootstrap >/dev/null || apt_install debootstrap >/dev/null
  local root="$CACHE/rootfs"
  rm -rf "$root"
  mkdir -p "$CACHE"
  timed "debootstrap --variant=minbase bookworm" \
    sh -c "debootstrap --variant=minbase bookworm '$root' '$MIRROR' >'$CACHE/debootstrap.log' 2>&1" ||
    { tail -n 20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
  # No package lists or apt caches in the image: every Dockerfile runs apt-get update itself.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
  timed "docker import $BASE" \
    sh -c "tar -C '$root' -c . | docker import -c 'CMD [\"bash\"]' - '$BASE' >/dev/null"
  rm -rf "$root"
}

# build_image TAG DOCKERFILE CONTEXT [INPUT...]: docker build unless the inputs hash is unchanged.
build_image() {
  local tag="$1" file="$2" ctx="$3"
  shift 3
  local sum
  sum="$( (cat "$file"; docker image inspect -f '{{.Id}}' "$BASE"; for f in "$@"; do
    if [[ -d "$f" ]]; then find "$f" -type f -print0 | sort -z | xargs -0 cat; else cat "$f"; fi
  done) | sha256sum | cut -c1-16)"
  if [[ "$(label "$tag")" == "$sum" ]]; then
    log "$tag: cached"
    return
  fi
  # The legacy builder with the host network: no bridge exists on hosts run with --bridge=none.
  timed "docker build $tag" sh -c 'DOCKER_BUILDKIT=0 docker build -q --network host --label "dev.tollgate.inputs=$0" -f "$1" -t "$2" "$3" >/dev/null 2>"$4" || { cat "$4" >&2; exit 1; }' \
    "$sum" "$file" "$tag" "$ctx" "$CACHE/build.err"
}

start=$SECONDS
build_base
build_image "$CLICKHOUSE" "$HERE/clickhouse.Dockerfile" "$REPO_ROOT/deploy" \
  "$HERE/clickhouse-entrypoint.sh" "$REPO_ROOT/deploy/local/clickhouse"
# Kafka: the jars make services-up fetched (current when their stamp matches pom.xml, as
# services-up checks), else fetched here the same way with the host's Maven (~/.m2 cache).
pom="$REPO_ROOT/deploy/local/kafka/pom.xml"
pom_sum="$(sha256sum "$pom" | cut -d' ' -f1)"
current() { [[ -f "$1/.pom.sha256" && "$(<"$1/.pom.sha256")" == "$pom_sum" ]]; }
lib="${TOLLGATE_KAFKA_LIB:-${TOLLGATE_SERVICES_DIR:-$REPO_ROOT/.services}/kafka/lib}"
if ! current "$lib"; then
  lib="$CACHE/kafka-lib"
  if ! current "$lib"; then
    command -v mvn >/dev/null || die "no Kafka jars: run make services-up once (it fetches them with Maven), or install maven"
    rm -rf "$lib"
    fetch_jars() {
      mvn -B -q -f "$pom" dependency:copy-dependencies -DoutputDirectory="$lib" &&
        # As services-up.sh: slf4j-api must match the SLF4J 2 binding or the broker logs nothing.
        local v && v="$(basename "$(compgen -G "$lib/slf4j-reload4j-*.jar" | head -n1)" .jar)" &&
        v="${v#slf4j-reload4j-}" && rm -f "$lib"/slf4j-api-*.jar &&
        mvn -B -q -f "$pom" dependency:copy -Dartifact="org.slf4j:slf4j-api:$v" -DoutputDirectory="$lib"
    }
    timed "mvn (Kafka jars)" fetch_jars >"$CACHE/maven.log" 2>&1 || { tail -n 20 "$CACHE/maven.log" >&2; die "maven failed"; }
    echo "$pom_sum" >"$lib/.pom.sha256"
  fi
fi
ctx="$CACHE/kafka-context"
rm -rf "$ctx" && mkdir -p "$ctx"
cp -r "$lib" "$ctx/libs"
cp "$REPO_ROOT/deploy/local/kafka/log4j.properties" "$HERE/kafka-entrypoint.sh" "$ctx/"
build_image "$KAFKA" "$HERE/kafka.Dockerfile" "$ctx" "$ctx"

# tollgate: the static binary built here (the repo's Dockerfile builds it in golang:1.26, which
# an offline host cannot pull), copied FROM scratch with the demo config.
ctx="$CACHE/tollgate-context"
rm -rf "$ctx" && mkdir -p "$ctx"
timed "go build (static)" env CGO_ENABLED=0 go build -C "$REPO_ROOT" -trimpath -ldflags '-s -w' -o "$ctx/tollgate" ./cmd/tollgate
cp -r "$REPO_ROOT/deploy/demo" "$ctx/demo"
build_image "$TOLLGATE" "$HERE/tollgate.Dockerfile" "$ctx" "$ctx"
log "all images ready ($((SECONDS - start)) s): $BASE $KAFKA $CLICKHOUSE $TOLLGATE"
