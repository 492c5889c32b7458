// Package testenv gives integration tests their Kafka broker and ClickHouse server, in this order:
//
//  1. TOLLGATE_TEST_KAFKA / TOLLGATE_TEST_CLICKHOUSE when set (make test sets both after
//     make services-up): the addresses are used as they are and Docker is never asked;
//  2. otherwise, when a Docker engine answers, containers started by testcontainers-go on first
//     use and removed when the test binary ends (Run). Images: TOLLGATE_TEST_KAFKA_IMAGE and
//     TOLLGATE_TEST_CLICKHOUSE_IMAGE, by default the upstream apache/kafka and
//     clickhouse/clickhouse-server; the tollgate-local/* images of deploy/images run on the host
//     network (see containers.go);
//  3. otherwise (or with TOLLGATE_TEST_DOCKER=off) the test fails with one line saying how to get them. Never a silent skip: a
//     suite that passes without its services proves nothing. Only -short (make test-unit) skips.
//
// A test binary starts at most one broker and one server, shared by its tests, which isolate
// themselves by topic prefix and database name as they do on the shared services.
package testenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The environment variables the harness reads.
const (
	EnvKafka           = "TOLLGATE_TEST_KAFKA"
	EnvClickHouse      = "TOLLGATE_TEST_CLICKHOUSE"
	EnvKafkaImage      = "TOLLGATE_TEST_KAFKA_IMAGE"
	EnvClickHouseImage = "TOLLGATE_TEST_CLICKHOUSE_IMAGE"
	EnvClickHouseHTTP  = "TOLLGATE_TEST_CLICKHOUSE_HTTP" // with TOLLGATE_TEST_CLICKHOUSE; default host:8123
	// EnvDocker=off never asks Docker: without the addresses, tests fail at once.
	EnvDocker = "TOLLGATE_TEST_DOCKER"
)

// Default images: the upstream ones, pulled by Docker on a machine that reaches Docker Hub.
const (
	DefaultKafkaImage      = "apache/kafka:4.1.1"
	DefaultClickHouseImage = "clickhouse/clickhouse-server:24.8"
)

// howTo is the one line a test fails with when it cannot have its services.
const howTo = "set %s=host:port (make test does, after make services-up), or start a Docker engine so testcontainers-go can run %s (make test-containers)"

// startTimeout bounds one container's start, including the first pull of an upstream image.
const startTimeout = 5 * time.Minute

// service is one lazily resolved dependency.
type service struct {
	env, name string
	start     func(ctx context.Context) (endpoints, error)

	mu   sync.Mutex
	done bool
	ep   endpoints
	err  error
}

// endpoints is where a service answers: addr for its clients, http for ClickHouse's HTTP
// interface.
type endpoints struct{ addr, http string }

var (
	kafka      = &service{env: EnvKafka, name: "Kafka", start: startKafka}
	clickHouse = &service{env: EnvClickHouse, name: "ClickHouse", start: startClickHouse}
)

// Kafka returns the broker address list ("host:port[,host:port...]") for t, starting a container
// on first use when TOLLGATE_TEST_KAFKA is unset. It fails t when there is none.
func Kafka(t testing.TB) string { t.Helper(); return kafka.get(t) }

// ClickHouse returns the ClickHouse native-protocol address ("host:port") for t, starting a
// container on first use when TOLLGATE_TEST_CLICKHOUSE is unset. It fails t when there is none.
func ClickHouse(t testing.TB) string { t.Helper(); return clickHouse.get(t) }

// RequireKafka and RequireClickHouse resolve a service before the tests run, for a TestMain that
// hands the address to its tests in a package variable; the error is the one line to print
// before exiting non-zero.
func RequireKafka() (string, error)      { return kafka.resolve() }
func RequireClickHouse() (string, error) { return clickHouse.resolve() }

// KafkaAddr and ClickHouseAddr return the address already resolved in this process ("" if none
// was): for clean-up code in TestMain that must not start anything.
func KafkaAddr() string      { return kafka.resolved().addr }
func ClickHouseAddr() string { return clickHouse.resolved().addr }

// ClickHouseHTTP returns the address of the HTTP interface of the ClickHouse that ClickHouse
// (or RequireClickHouse) resolved: the container's, or for TOLLGATE_TEST_CLICKHOUSE the value
// of TOLLGATE_TEST_CLICKHOUSE_HTTP, by default the same host on 8123.
func ClickHouseHTTP() string { return clickHouse.resolved().http }

func (s *service) get(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("needs %s; -short runs unit tests only", s.name)
	}
	addr, err := s.resolve()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// fromEnv is a service named by its environment variable.
func (s *service) fromEnv(v string) endpoints {
	ep := endpoints{addr: v}
	if s == clickHouse {
		ep.http = os.Getenv(EnvClickHouseHTTP)
		if ep.http == "" {
			host, _, _ := strings.Cut(v, ":")
			ep.http = host + ":8123"
		}
	}
	return ep
}

// resolve returns the env address, or starts the container once; a failure is kept, so every
// later test fails at once with the same line instead of trying again.
func (s *service) resolve() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return s.ep.addr, s.err
	}
	s.done = true
	if v := os.Getenv(s.env); v != "" {
		s.ep = s.fromEnv(v)
		return s.ep.addr, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if os.Getenv(EnvDocker) == "off" {
		s.err = fmt.Errorf("no %s: "+howTo+" (%s=off)", s.name, s.env, s.name, EnvDocker)
		return "", s.err
	}
	if err := dockerAnswers(ctx); err != nil {
		s.err = fmt.Errorf("no %s: "+howTo+" (docker: %v)", s.name, s.env, s.name, err)
		return "", s.err
	}
	began := time.Now()
	ep, err := s.start(ctx)
	if err != nil {
		s.err = fmt.Errorf("no %s: %s is unset and its container did not start: %w", s.name, s.env, err)
		return "", s.err
	}
	// A figure for the reader of the test log, not an assertion.
	fmt.Fprintf(os.Stderr, "testenv: %s container ready on %s in %.1fs\n", s.name, ep.addr, time.Since(began).Seconds())
	s.ep = ep
	return s.ep.addr, nil
}

func (s *service) resolved() endpoints {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ep
}

// Run runs the tests and then removes the containers this process started; a TestMain calls
// os.Exit(testenv.Run(m)) (or calls Stop itself after its own clean-up).
func Run(m *testing.M) int {
	code := m.Run()
	Stop()
	return code
}

// Stop removes the containers this process started (none when the env named the services).
func Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stopContainers(ctx)
}

// CPUTime is the CPU time (user and system) this process has used: benchmarks on a shared
// machine report it per operation, since the wall clock also counts other work.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// LoopCPU runs op in b's loop and reports, beside the wall clock's ns/op, the CPU time per op
// as cpu-ns/op (CPUTime): the figure to compare on a shared machine.
func LoopCPU(b *testing.B, op func()) {
	cpu0 := CPUTime()
	for b.Loop() {
		op()
	}
	b.ReportMetric(float64(CPUTime()-cpu0)/float64(b.N), "cpu-ns/op")
}
