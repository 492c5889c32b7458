# tollgate developer tasks. `make demo` first, then `make test`.

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
export TOLLGATE_TEST_KAFKA      ?= 127.0.0.1:9092
export TOLLGATE_TEST_CLICKHOUSE ?= 127.0.0.1:9000

.PHONY: build chdb-venv test test-static test-binary test-unit test-containers images demo bench chaos fmt lint tidy-check services-up services-down cluster-up cluster-down test-cluster test-cluster-restart clean

# One static binary with every component.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/tollgate ./cmd/tollgate

# Local Kafka (127.0.0.1:9092, KRaft) + ClickHouse (127.0.0.1:9000 / :8123), no Docker.
# State, data and logs: .services/ (override with TOLLGATE_SERVICES_DIR).
services-up:
	@deploy/local/services-up.sh

# The cluster topology (deploy/cluster): ZooKeeper 127.0.0.1:22181, three KRaft brokers on
# 127.0.0.1:29092-29094, two ClickHouse replicas (cluster `tollgate`) on 29000/29001 (HTTP
# 28123/28124). Same rules as services-up; state in .services/cluster. The ports overlap
# docker-compose.host.yml's: run one or the other.
cluster-up:
	@deploy/cluster/cluster-up.sh

# Stop them (by pid file); data and logs are kept. One node at a time, for fault tests:
# deploy/cluster/node.sh kill|stop broker|clickhouse N (SIGKILL / graceful, by pid file); start it
# again with make cluster-up.
cluster-down:
	@deploy/cluster/cluster-down.sh

# The Python venv with chdb (ClickHouse 26.x embedded) that audit's statement check runs on:
# .services/chdb-venv, pinned by deploy/chdb/requirements.txt. The test creates it too.
chdb-venv:
	@deploy/chdb/venv.sh >/dev/null

# Stop them (by pid file); data and logs are kept.
services-down:
	@deploy/local/services-down.sh

# Services, build, the whole pipeline, sample traffic, and a report read back from ClickHouse.
demo: services-up build
	@deploy/demo/demo.sh

# Every test, unit and integration, against the real Kafka and ClickHouse started here.
# The services, the chdb venv, the static checks (tidy, gofmt, vet) and the binary e2e drives
# (TOLLGATE_E2E_BINARY) are independent: they run at once (-O keeps each one's output
# together; go.mod is tidied before the build and vet read it). -p: packages at once;
# -parallel: tests at once in each. The integration packages (e2e, processors/enforce, audit, sinks/delivery) spend most
# of their time waiting on the broker, ClickHouse and their own processes, so more of them than
# cores fit: with -p 4 the longest packages waited for a free slot and ended one after another
# (quiet: 185 s of go test with -p 4, 159 s with -p 8; -parallel 6 gained nothing more).
TEST_PACKAGES ?= 8
TEST_PARALLEL ?= 4
test:
	@$(MAKE) --no-print-directory -j 4 -O services-up chdb-venv test-static test-binary
	TOLLGATE_E2E_BINARY=$(CURDIR)/bin/tollgate $(GO) test -race -shuffle=on -count=1 -p $(TEST_PACKAGES) -parallel $(TEST_PARALLEL) -timeout 30m ./...

# The checks that need no service: go.mod tidy, gofmt, go vet.
test-static: tidy-check
	$(GO) vet ./...

test-binary: tidy-check
	@$(MAKE) --no-print-directory build

# The tests against Kafka and ClickHouse containers that testcontainers-go starts from the
# offline images (make images) instead of services-up: starts dockerd if it is installed but not
# running (no bridge; stopped afterwards). Packages: TEST_CONTAINERS_PKGS (default ./...).
test-containers:
	@deploy/images/test-containers.sh

# The offline images (deploy/images): Debian base by debootstrap, Kafka, ClickHouse, tollgate:dev.
images:
	@deploy/images/build.sh

# Unit tests only (no services needed).
test-unit:
	$(GO) test -short -count=1 ./...

# The tests on the cluster topology (make cluster-up), which `make test` does not run. They find
# the cluster through these variables (the tests skip without them). Parts, each a go test run:
#   replicated ClickHouse (clickhouse.cluster): CLUSTER_CLICKHOUSE_PKGS, tests named TestCluster*.
#   the fault run (e2e TestClusterFaults, TOLLGATE_TEST_CLUSTER=1): traffic through every component
#   while a broker is SIGKILLed and restarted and a ClickHouse replica stopped for 60 s; prints
#   `cluster-faults:` lines (503s and the longest time without a 2xx at ingest). It takes nodes
#   down with deploy/cluster/node.sh: nothing else may use the cluster meanwhile.
CLUSTER_ENV := TOLLGATE_TEST_CLICKHOUSE_CLUSTER=127.0.0.1:29000,127.0.0.1:29001 \
	TOLLGATE_TEST_CLICKHOUSE=127.0.0.1:29000 TOLLGATE_TEST_KAFKA=127.0.0.1:29092,127.0.0.1:29093,127.0.0.1:29094
CLUSTER_CLICKHOUSE_PKGS ?= ./audit/
test-cluster: cluster-up
	$(CLUSTER_ENV) $(GO) test -count=1 -timeout 20m -run '^TestCluster' $(CLUSTER_CLICKHOUSE_PKGS)
	$(CLUSTER_ENV) TOLLGATE_TEST_CLUSTER=1 $(GO) test -count=1 -timeout 30m -v -run '^TestClusterFaults$$' ./e2e/

# The cluster survives a restart with replicated tables in place (deploy/cluster/restart-check.sh):
# cluster-up, a replicated table, cluster-down, cluster-up, both replicas hold its row. Brings the
# cluster down at the end unless it was up before.
test-cluster-restart:
	@deploy/cluster/restart-check.sh

# Measure the pipeline on this machine and print one JSON object (deploy/bench). Flags go in
# BENCH_FLAGS, e.g. BENCH_FLAGS='-profile-dir /tmp/prof -batch-duration 30s'.
bench: services-up build
	@$(GO) run ./deploy/bench -bin bin/tollgate $(BENCH_FLAGS)

# Fault suite against a PRIVATE Kafka and ClickHouse (ports 19092/19000/18123, state in
# .services/chaos; the shared services are never touched): kill -9 of each component, a broker
# restart, ClickHouse down for a minute, vendor 429/5xx storms, poison records; ends with the
# invariant table. Not part of `make test`. Flags in CHAOS_FLAGS (e.g. -seed 42 -duration 3m).
chaos: build
	@$(GO) run ./deploy/chaos -bin bin/tollgate $(CHAOS_FLAGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

lint:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt would change:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

# Fails when go.mod/go.sum are not tidy or a file is not gofmt'ed.
tidy-check:
	@cp go.mod /tmp/tollgate.go.mod.$$$$ && cp go.sum /tmp/tollgate.go.sum.$$$$ && \
	  $(GO) mod tidy && \
	  if ! cmp -s go.mod /tmp/tollgate.go.mod.$$$$ || ! cmp -s go.sum /tmp/tollgate.go.sum.$$$$; then \
	    echo "go mod tidy changed go.mod/go.sum: commit the result"; exit 1; fi
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt would change:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

clean:
	rm -rf bin
