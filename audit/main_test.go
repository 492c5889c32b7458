package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/schemas"
)

// The tests run against a real ClickHouse and a real Kafka, named by TOLLGATE_TEST_CLICKHOUSE
// (native protocol host:port) and TOLLGATE_TEST_KAFKA (comma-separated brokers); `make test`
// sets both after `make services-up`. Unset, internal/testenv starts them in containers when
// Docker answers, and otherwise the run fails: a suite that passes without its services proves
// nothing.
//
// Every test gets its own database, tollgate_test_<run>_<n>, and its own topics, test<rand>.*,
// so tests can run in parallel and reruns never see old data. TestMain drops the run's
// databases at the end (also those of tests that failed before their cleanup).

var (
	testClickHouse, testKafka string // set by TestMain (empty under -short)
	testRun                   = randomHex(4)
	testDBSeq                 atomic.Int64
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(childWriterEnv); spec != "" {
		os.Exit(runChildWriter(spec)) // this process is a writer a test will kill
	}
	flag.Parse()
	if !testing.Short() {
		var err error
		if testClickHouse, err = testenv.RequireClickHouse(); err == nil {
			testKafka, err = testenv.RequireKafka()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "clickhouse tests:", err)
			testenv.Stop()
			os.Exit(1)
		}
	}
	code := m.Run()
	if testClickHouse != "" {
		if err := dropRunDatabases(); err != nil {
			fmt.Fprintln(os.Stderr, "clickhouse tests: drop test databases:", err)
		}
	}
	testenv.Stop()
	os.Exit(code)
}

func dropRunDatabases() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{testClickHouse}})
	if err != nil {
		return err
	}
	defer conn.Close()
	rows, err := conn.Query(ctx, "SELECT name FROM system.databases WHERE startsWith(name, ?)", "tollgate_test_"+testRun+"_")
	if err != nil {
		return err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return err
		}
		names = append(names, n)
	}
	rows.Close()
	for _, n := range names {
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+n+"`"); err != nil {
			return err
		}
	}
	return nil
}

func needClickHouse(t testing.TB) {
	t.Helper()
	if testClickHouse == "" {
		if testing.Short() { // make test-unit: no services
			t.Skip("needs ClickHouse (TOLLGATE_TEST_CLICKHOUSE)")
		}
		t.Fatal("set TOLLGATE_TEST_CLICKHOUSE (make test does) or run make services-up")
	}
}

func needKafka(t testing.TB) {
	t.Helper()
	if testKafka == "" {
		t.Fatal("set TOLLGATE_TEST_KAFKA (make test does) or run make services-up")
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// testConfig returns a config for this test: a fresh database name and, when Kafka is named, a
// fresh topic prefix. Policy stays nil: the writer does not need it.
func testConfig(t testing.TB) *config.Config {
	t.Helper()
	needClickHouse(t)
	cfg := &config.Config{
		ClickHouse: config.ClickHouse{
			Addr:          testClickHouse,
			Database:      fmt.Sprintf("tollgate_test_%s_%d", testRun, testDBSeq.Add(1)),
			Username:      "default",
			FlushInterval: 100 * time.Millisecond,
			BatchSize:     1000,
		},
		Kafka: config.Kafka{TopicPrefix: "test" + randomHex(4) + ".", Partitions: 3, ReplicationFactor: 1},
	}
	if testKafka != "" {
		cfg.Kafka.Brokers = strings.Split(testKafka, ",")
	}
	return cfg
}

// openDB opens ClickHouse as cfg says (Addr may be overridden by the caller), migrates the
// test's database, and drops it when the test ends.
func openDB(t testing.TB, cfg *config.Config) *DB {
	t.Helper()
	ctx := context.Background()
	c := *cfg
	c.ClickHouse.Addr = testClickHouse // a test may point the writer through a proxy; we go direct
	db, err := Open(ctx, &c)
	require.NoError(t, err)
	require.NoError(t, db.Migrate(ctx))
	t.Cleanup(func() {
		_ = db.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+db.Database+"`")
		_ = db.Close()
	})
	return db
}

// createTopics creates the audit topics of cfg and deletes them when the test ends.
func createTopics(t testing.TB, cfg *config.Config) {
	t.Helper()
	needKafka(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...))
	require.NoError(t, err)
	adm := kadm.NewClient(cl)
	topics := []string{cfg.Topic(config.TopicDecisions), cfg.Topic(config.TopicDeliveries), cfg.Topic(config.TopicAuditParked)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopics(ctx, int32(cfg.Kafka.Partitions), 1, nil, topics...)
	require.NoError(t, err)
	require.NoError(t, resp.Error())
	compact := "compact"
	state := cfg.Topic(config.TopicState)
	resp, err = adm.CreateTopics(ctx, int32(cfg.Kafka.Partitions), 1, map[string]*string{"cleanup.policy": &compact}, state)
	require.NoError(t, err)
	require.NoError(t, resp.Error())
	topics = append(topics, state)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopics(ctx, topics...)
		cl.Close()
	})
}

// testGroup returns a fresh consumer group name, deleted when the test ends.
func testGroup(t testing.TB, cfg *config.Config) string {
	t.Helper()
	group := "test-audit-" + randomHex(4)
	t.Cleanup(func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...))
		if err != nil {
			return
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = kadm.NewClient(cl).DeleteGroups(ctx, group)
	})
	return group
}

// producer returns a client producing with explicit partitions (Record.Partition).
func producer(t testing.TB, cfg *config.Config, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Kafka.Brokers...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		// Until produce's deadline: a busy broker may not serve a topic created a moment ago
		// yet (UNKNOWN_TOPIC_OR_PARTITION past franz-go's default four retries).
		kgo.UnknownTopicRetries(-1),
	}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

func produce(t testing.TB, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, cl.ProduceSync(ctx, recs...).FirstErr())
}

// decisionRecord is d as the processor writes it: a DecisionSet of one destination (the
// per-destination Decision records of before are TestWriterDecisionSetsMatchPerDestinationRecords').
func decisionRecord(t testing.TB, cfg *config.Config, partition int32, d schemas.Decision) *kgo.Record {
	t.Helper()
	return decisionSetRecord(t, cfg, partition, []schemas.Decision{d})
}

func deliveryRecord(t testing.TB, cfg *config.Config, partition int32, d schemas.Delivery) *kgo.Record {
	t.Helper()
	b, err := schemas.Deliveries.Encode(&d)
	require.NoError(t, err)
	return &kgo.Record{Topic: cfg.Topic(config.TopicDeliveries), Partition: partition, Key: []byte(d.EventID), Value: b}
}

// testDecision returns a decision with every field set and distinct per i. Times carry
// milliseconds, which DateTime drops.
func testDecision(i int) schemas.Decision {
	base := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC).UnixMilli()
	outcome, reason := "forwarded", "consented"
	if i%3 == 1 {
		outcome, reason = "blocked", "no_consent"
	}
	return schemas.Decision{
		DecisionID:     fmt.Sprintf("dec-%05d", i),
		EventID:        fmt.Sprintf("evt-%05d", i),
		UserKey:        fmt.Sprintf("u-%d", i%7),
		Destination:    []string{"ga4", "meta"}[i%2],
		EventName:      "purchase",
		EventTimeMs:    base + int64(i)*60_000 + 123,
		DecidedMs:      base + int64(i)*60_000 + 2_456,
		Outcome:        outcome,
		Reason:         reason,
		Purpose:        "analytics",
		Jurisdiction:   []string{"EU", "US-CA", "default"}[i%3],
		GPC:            i%4 == 0,
		FieldsSent:     []string{"context.page_url", fmt.Sprintf("properties.p%d", i%5)},
		FieldsStripped: []string{"properties.email"},
		PolicyVersion:  "2026-11-01",
		HeldMs:         int64(i%4) * 1_250, // every fourth was not held
	}
}

func testDelivery(i int) schemas.Delivery {
	return schemas.Delivery{
		EventID:     fmt.Sprintf("evt-%05d", i),
		Destination: []string{"ga4", "meta"}[i%2],
		Attempt:     1 + i%3,
		Status:      []string{"delivered", "retrying", "dead_lettered", "blocked"}[i%4],
		HTTPStatus:  []int{200, 503, 400, 0}[i%4],
		Error:       []string{"", "http_503", "http_400", "withdrawn"}[i%4],
		LatencyMs:   int64(10 + i),
		AtMs:        time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC).UnixMilli() + int64(i)*1000 + 999,
		DeliveryID:  fmt.Sprintf("d-%05d", i),
	}
}

// truncated is d as it reads back from ClickHouse: times in whole seconds.
func truncated(d schemas.Decision) schemas.Decision {
	d.EventTimeMs = d.EventTimeMs / 1000 * 1000
	d.DecidedMs = d.DecidedMs / 1000 * 1000
	return d
}

// readDecisions returns the decisions table (FINAL) keyed by decision_id.
func readDecisions(t testing.TB, db *DB, table string) map[string]schemas.Decision {
	t.Helper()
	rows, err := db.Query(context.Background(), "SELECT "+columnNames(decisionsColumns)+" FROM "+db.table(table)+" FINAL")
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]schemas.Decision{}
	for rows.Next() {
		var (
			d                  schemas.Decision
			eventTime, decided time.Time
			gpc                uint8
			held               uint32
		)
		require.NoError(t, rows.Scan(&d.DecisionID, &d.EventID, &d.UserKey, &d.Destination, &d.EventName, &eventTime, &decided,
			&d.Outcome, &d.Reason, &d.Purpose, &d.Jurisdiction, &gpc, &d.FieldsSent, &d.FieldsStripped, &d.PolicyVersion, &d.RunID,
			&d.ConsentSource, &d.ConsentProof, &held))
		d.EventTimeMs, d.DecidedMs, d.GPC, d.HeldMs = eventTime.UnixMilli(), decided.UnixMilli(), gpc == 1, int64(held)
		require.NotContains(t, out, d.DecisionID, "duplicate under FINAL")
		out[d.DecisionID] = d
	}
	require.NoError(t, rows.Err())
	return out
}

func readDeliveries(t testing.TB, db *DB) []schemas.Delivery {
	t.Helper()
	rows, err := db.Query(context.Background(), "SELECT "+columnNames(deliveriesColumns)+" FROM "+db.table("deliveries")+" FINAL ORDER BY event_id")
	require.NoError(t, err)
	defer rows.Close()
	var out []schemas.Delivery
	for rows.Next() {
		var (
			d                   schemas.Delivery
			attempt, httpStatus uint16
			latency             uint32
			at                  time.Time
		)
		require.NoError(t, rows.Scan(&d.EventID, &d.Destination, &attempt, &d.Status, &httpStatus, &d.Error, &latency, &at, &d.DeliveryID, &d.RunID))
		d.Attempt, d.HTTPStatus, d.LatencyMs, d.AtMs = int(attempt), int(httpStatus), int64(latency), at.UnixMilli()
		out = append(out, d)
	}
	require.NoError(t, rows.Err())
	return out
}

func countRaw(t testing.TB, db *DB, table string) uint64 {
	t.Helper()
	var n uint64
	require.NoError(t, db.QueryRow(context.Background(), "SELECT count() FROM "+db.table(table)).Scan(&n))
	return n
}

// runningWriter is a Writer running in the background until stop.
type runningWriter struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// startWriter runs a writer for cfg in consumer group group; it is stopped when the test ends
// if the test did not stop it.
func startWriter(t testing.TB, cfg *config.Config, group string, log *zap.Logger) *runningWriter {
	t.Helper()
	w := New(cfg, log)
	w.group = group
	ctx, cancel := context.WithCancel(context.Background())
	rw := &runningWriter{cancel: cancel, done: make(chan error, 1)}
	go func() { rw.done <- w.Run(ctx) }()
	t.Cleanup(func() { _ = rw.stop() })
	return rw
}

// stop cancels the writer and waits for Run to return: within the 10 s a tollgate process has to stop, with margin.
func (rw *runningWriter) stop() error {
	rw.once.Do(func() {
		rw.cancel()
		select {
		case rw.err = <-rw.done:
		case <-time.After(10 * time.Second):
			rw.err = errors.New("writer did not stop within 10s")
		}
	})
	return rw.err
}

// testLogger logs to the test and records entries at warn level and above for assertions.
func testLogger(t testing.TB) (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.WarnLevel)
	log := zaptest.NewLogger(t, zaptest.WrapOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewTee(c, core)
	})))
	return log, logs
}

// committed returns the sum over the audit topics' partitions of the group's committed offsets
// (0 for a group that has committed nothing yet).
func committed(t testing.TB, cfg *config.Config, group string) int64 {
	t.Helper()
	n := polledCommitted(t, cfg, group)
	require.GreaterOrEqual(t, n, int64(0), "committed offsets of %s", group)
	return n
}

// polledCommitted is committed for a poll: -1 while Kafka cannot answer (a broker started a
// moment ago answers COORDINATOR_NOT_AVAILABLE until its offsets topic is ready).
func polledCommitted(t testing.TB, cfg *config.Config, group string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Logf("committed offsets of %s not readable yet: %v", group, err)
		return -1
	}
	var sum int64
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == cfg.Topic(config.TopicDecisions) || o.Topic == cfg.Topic(config.TopicDeliveries) {
			sum += o.At
		}
	})
	return sum
}

// endOffsets returns the sum of the audit topics' end offsets.
func endOffsets(t testing.TB, cfg *config.Config) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, cfg.Topic(config.TopicDecisions), cfg.Topic(config.TopicDeliveries))
	require.NoError(t, err)
	var sum int64
	ends.Each(func(o kadm.ListedOffset) {
		require.NoError(t, o.Err)
		sum += o.Offset
	})
	return sum
}

// proxy forwards TCP connections to target while up; while down it closes every open
// connection and refuses new ones (accept, then close) — ClickHouse going away, as the writer
// sees it, without touching the shared server.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	up    bool
	conns map[net.Conn]struct{}
}

func newProxy(t testing.TB, target string, up bool) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln, target: target, up: up, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.set(false)
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) set(up bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up = up
	if !up {
		for c := range p.conns {
			_ = c.Close()
		}
		clear(p.conns)
	}
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.pipe(c)
	}
}

func (p *proxy) pipe(c net.Conn) {
	p.mu.Lock()
	up := p.up
	p.mu.Unlock()
	if !up {
		_ = c.Close()
		return
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	if !p.up { // went down while dialing
		p.mu.Unlock()
		_, _ = c.Close(), s.Close()
		return
	}
	p.conns[c], p.conns[s] = struct{}{}, struct{}{}
	p.mu.Unlock()
	go func() { _, _ = io.Copy(s, c); _ = s.Close() }()
	_, _ = io.Copy(c, s)
	_ = c.Close()
}
