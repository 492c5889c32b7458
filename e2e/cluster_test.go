package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/audit"
	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/processors/consent"
	"github.com/tollgate-dev/tollgate/schemas"
)

// The cluster fault run, on make cluster-up's topology (deploy/cluster): `make test-cluster` runs
// it with TOLLGATE_TEST_CLUSTER=1, TOLLGATE_TEST_KAFKA naming the three brokers and
// TOLLGATE_TEST_CLICKHOUSE_CLUSTER the two replicas (replica 1 first). TOLLGATE_SERVICES_DIR
// names the cluster's state folder when it is not the repository's .services. The test takes
// nodes down with deploy/cluster/node.sh and brings them back with cluster-up.sh, so nothing
// else may use the cluster meanwhile.

const clusterName = "tollgate"

const clusterConfigYAML = `
kafka:
  brokers: [%s]
  topic_prefix: %q
clickhouse:
  addr: %q
  cluster: %s
  database: %q
  flush_interval: 200ms
ingest:
  listen: %q
  write_keys: [%q]
delivery:
  max_attempts: 3
  initial_backoff: 50ms
policy_file: policy.yaml
`

// TestClusterFaults: traffic flows through ingest into a processor, sinks and the audit writer
// running as separate processes (two processors, two sinks per destination) on three brokers
// and two ClickHouse replicas. Meanwhile the broker coordinating processor a's transactions is
// killed with SIGKILL and started again, then ClickHouse replica 1 is stopped for 60 s and
// started again. At the end nothing is lost, decided twice, forwarded against consent or
// delivered twice, both replicas hold every decision, and every event ingest accepted is on the
// raw topic.
func TestClusterFaults(t *testing.T) {
	if os.Getenv("TOLLGATE_TEST_CLUSTER") != "1" {
		t.Skip("needs make cluster-up's cluster to itself (TOLLGATE_TEST_CLUSTER=1; run by make test-cluster)")
	}
	brokers := strings.Split(kafkaAddr, ",")
	require.Len(t, brokers, 3, "TOLLGATE_TEST_KAFKA names the cluster's three brokers")
	replicas := strings.Split(os.Getenv("TOLLGATE_TEST_CLICKHOUSE_CLUSTER"), ",")
	require.Len(t, replicas, 2, "TOLLGATE_TEST_CLICKHOUSE_CLUSTER names the two replicas")

	p := newPipelineWith(t, func(p *pipeline, listen string) string {
		quoted := make([]string, len(brokers))
		for i, b := range brokers {
			quoted[i] = strconv.Quote(b)
		}
		return fmt.Sprintf(clusterConfigYAML, strings.Join(quoted, ", "), p.prefix,
			strings.Join(replicas, ","), clusterName, p.db, listen, writeKey)
	})
	t.Cleanup(func() { dropOnCluster(t, p, replicas[1]) })

	procs := []*proc{p.spawn("ingest", nil, "ingest")}
	p.waitReady()
	procs = append(procs, p.spawn("audit", nil, "audit"))
	for _, inst := range []string{"a", "b"} {
		procs = append(procs, p.spawn("processor-"+inst, []string{"TOLLGATE_PROCESSOR_INSTANCE=" + inst}, "process"))
		for _, dest := range p.cfg.Policy.Names {
			procs = append(procs, p.spawn("sink-"+dest+"-"+inst, nil, "sink", "--destination", dest))
		}
	}
	restarts := supervise(t, procs)
	t.Cleanup(func() {
		if t.Failed() {
			for _, c := range procs {
				lines := c.logs.lines()
				t.Logf("last lines of %s:\n%s", c.Name, strings.Join(lines[max(0, len(lines)-30):], "\n"))
			}
		}
	})

	tr := startClusterTraffic(t, p)
	tr.waitMore(t, 300, "before the faults")
	// Whatever happens, the cluster is whole again before the processes stop and for the next
	// user (cleanups run last-registered first).
	t.Cleanup(func() { clusterUp(t) })

	// A broker dies the hard way while ingest is answering, and comes back.
	victim, led := victimBroker(t, p)
	t.Logf("killing broker %d: transaction coordinator of processor a, leader of %d raw partitions", victim, led)
	killed := time.Now()
	node(t, "kill", "broker", victim)
	tr.waitMore(t, 400, "with a broker down")
	clusterUp(t)
	down := time.Since(killed)
	tr.waitMore(t, 200, "after the broker came back")
	brokerFig := tr.figures(killed, time.Now())

	// ClickHouse replica 1, the audit writer's first address, stops for 60 s; the writer goes
	// on through replica 2.
	r2 := replicaDB(t, p, replicas[1])
	before := decisionRows(t, r2, p.db)
	node(t, "stop", "clickhouse", "1")
	stopped := time.Now()
	require.Eventually(t, func() bool {
		return time.Since(stopped) >= 60*time.Second && decisionRows(t, r2, p.db) > before
	}, 3*time.Minute, time.Second, "the audit writer wrote nothing to replica 2 while replica 1 was down")
	clusterUp(t)
	chFig := tr.figures(stopped, time.Now())
	tr.waitMore(t, 200, "after the replica came back")
	tr.finish()
	require.NoError(t, tr.err)

	exits := restarts()
	// Reported, not failed: a processor whose transaction the coordinator aborted while the broker
	// was away (INVALID_PRODUCER_EPOCH) is fenced and replaces its producer in-process, exiting
	// for its supervisor only if that keeps failing; what matters is that nothing is lost or
	// doubled meanwhile, which the checks below prove.
	t.Logf("components that exited and were restarted: %d %v", len(exits), exits)
	t.Logf("broker %d SIGKILLed, back after %s; ingest meanwhile: %s", victim, down.Round(time.Second), brokerFig)
	t.Logf("ClickHouse replica 1 stopped 60 s, ingest meanwhile: %s", chFig)
	fmt.Printf("cluster-faults: broker_kill node=%d down=%s %s component_restarts=%d\n", victim, down.Round(time.Second), brokerFig, len(exits))
	fmt.Printf("cluster-faults: clickhouse_stop replica=1 %s\n", chFig)
	require.Zero(t, chFig.unavailable+chFig.otherStatus+chFig.noAnswer, "ingest does not depend on ClickHouse")

	verifyCluster(t, p, tr, replicas)
}

// supervise starts again any component that exits before the test ends, as its service manager
// would (Kubernetes, systemd), and returns a function listing the exits so far: a process that
// gives up on a fault must not silently turn into "nothing flowed".
func supervise(t *testing.T, procs []*proc) func() []string {
	var mu sync.Mutex
	var exits []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, c := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				done := c.Done()
				select {
				case <-stop:
					return
				case <-done:
				}
				select {
				case <-stop:
					return
				default:
				}
				lines := c.logs.lines()
				last := ""
				for i := len(lines) - 1; i >= 0 && last == ""; i-- {
					last = strings.TrimSpace(lines[i])
				}
				mu.Lock()
				exits = append(exits, c.Name+": "+last)
				mu.Unlock()
				c.start()
			}
		}()
	}
	// Registered after the processes: runs before they are stopped.
	t.Cleanup(func() { close(stop); wg.Wait() })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), exits...)
	}
}

// verifyCluster waits until the pipeline has drained and checks the run's outcome.
func verifyCluster(t *testing.T, p *pipeline, tr *clusterTraffic, replicas []string) {
	cl, err := kafka.NewClient(p.cfg, zap.NewNop())
	require.NoError(t, err)
	defer cl.Close()
	oracle := readRawLog(t, p.cfg, waitConsumed(t, cl, p.cfg))

	// Ingest never answered 2xx for an event Kafka did not hold.
	onRaw := make(map[string]bool, len(oracle.events))
	for _, ev := range oracle.events {
		onRaw[ev.id] = true
	}
	for id := range tr.accepted {
		require.True(t, onRaw[id], "ingest answered 2xx for %s, which is not on the raw topic", id)
	}
	// Every raw event has one decision per destination, none twice, each as consent allows.
	decided, filtered := checkDecisionTopics(t, cl, p, oracle)
	blockedMarketing := 0
	for _, d := range decided {
		if d.Destination == "meta" && d.Outcome == consent.Blocked {
			blockedMarketing++
		}
	}
	require.Positive(t, blockedMarketing, "the traffic has events whose marketing forward is forbidden")

	// Each vendor received each forwarded event once, and nothing else, but for two cases the
	// audit must then show. The sink's send-time re-check blocks an event whose user withdrew
	// after its decision (a withdrawal takes effect at once; the broker's absence delays
	// deliveries, so this happens around the kill): a `blocked` row. GA4 takes no event id to
	// deduplicate by, so a request whose outcome the sink could not know (a timeout on the
	// starved cores while the broker was away) is not sent again (on_doubt skip, CONTRACT §9):
	// an `in_doubt` row, so the audit does not claim it.
	vendors := map[string]interface{ Keys() []string }{"ga4": p.ga4, "meta": p.meta, "ops": p.ops}
	for dest, v := range vendors {
		want := map[string]string{} // vendor key → event id
		for id, f := range filtered[dest] {
			want[vendorKey(dest, f)] = id
		}
		accounted := func() (missing []string) {
			seen := map[string]bool{}
			for _, k := range v.Keys() {
				seen[k] = true
			}
			var st map[string][]string
			for k, id := range want {
				if seen[k] {
					continue
				}
				if st == nil {
					st = statuses(t, p, dest)
				}
				if !has(st[id], "blocked") && (dest != "ga4" || !has(st[id], "in_doubt")) {
					missing = append(missing, id)
				}
			}
			return missing
		}
		var missing []string
		if !assert.Eventually(t, func() bool { missing = accounted(); return len(missing) == 0 }, 5*time.Minute, 250*time.Millisecond) {
			// Name each event and what the audit says of it (its deliveries statuses), so a
			// failure can be read without the run's database, which the test drops.
			st := statuses(t, p, dest)
			said := make([]string, 0, len(missing))
			for _, id := range missing {
				said = append(said, fmt.Sprintf("%s [%s]", id, strings.Join(st[id], ",")))
			}
			require.FailNow(t, fmt.Sprintf("%s received %d of %d forwarded events; not received, not blocked at send time and not in doubt: %v",
				dest, len(v.Keys()), len(want), said))
		}
		got := map[string]int{}
		for _, k := range v.Keys() {
			id, ok := want[k]
			require.True(t, ok, "%s received %s, which has no forward decision for it (decision: %s)", dest, k, decided[k+"/"+dest].Outcome)
			got[id]++
			require.Equal(t, 1, got[id], "%s received %s twice", dest, id)
		}
		if skipped := len(want) - len(got); skipped > 0 {
			t.Logf("%s: %d forwarded events not received, each blocked at send time or in doubt (on_doubt skip)", dest, skipped)
		}
	}

	// Both replicas hold every decision, each read on its own.
	for _, addr := range replicas {
		checkAuditMatches(t, replicaDB(t, p, addr), p.db, decided, nil)
	}
	t.Logf("verified %d events accepted (%d on the raw topic, %d resent after a lost answer), %d consent changes, %d decisions (%d marketing blocked), forwarded: ga4 %d, meta %d, ops %d",
		len(tr.accepted), len(oracle.events), oracle.resends, tr.updates, len(decided), blockedMarketing,
		len(filtered["ga4"]), len(filtered["meta"]), len(filtered["ops"]))
}

// vendorKey is how a stand-in tells a received event apart (standin.Request.Keys): the event id,
// except for GA4, whose events carry none: client_id (the user key), time and name.
func vendorKey(dest string, f schemas.FilteredEvent) string {
	if dest == "ga4" {
		return fmt.Sprintf("%s|%d|%s", f.UserKey, f.TimestampMs*1000, f.Event)
	}
	return f.EventID
}

// victimBroker picks the broker whose loss hurts most: the transaction coordinator of processor
// a (its commits must move to another broker mid-stream). It returns the broker's number in
// deploy/cluster (its node id, 1-3) and how many of the raw topic's partitions it leads, that
// is, how many of ingest's writes it takes with it.
func victimBroker(t *testing.T, p *pipeline) (node, rawLed int) {
	cl, err := kafka.NewClient(p.cfg, zap.NewNop())
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	txn := p.cfg.ProcessorGroup() + "-a" // enforce.transactionalID with TOLLGATE_PROCESSOR_INSTANCE=a
	coord, ok := adm.FindTxnCoordinators(ctx, txn)[txn]
	require.True(t, ok && coord.Err == nil, "no transaction coordinator for %s: %v", txn, coord.Err)
	raw := p.cfg.Topic(config.TopicRaw)
	md, err := adm.Metadata(ctx, raw)
	require.NoError(t, err)
	for _, part := range md.Topics[raw].Partitions {
		require.Len(t, part.Replicas, 3, "%s is replicated on the three brokers", raw)
		if part.Leader == coord.NodeID {
			rawLed++
		}
	}
	return int(coord.NodeID), rawLed
}

// node runs deploy/cluster/node.sh (kill or stop one node by its pid file).
func node(t *testing.T, args ...any) {
	t.Helper()
	s := make([]string, len(args))
	for i, a := range args {
		s[i] = fmt.Sprint(a)
	}
	clusterScript(t, "node.sh", s...)
}

// clusterUp reruns cluster-up.sh, which starts whatever node is not running and waits for all.
func clusterUp(t *testing.T) { t.Helper(); clusterScript(t, "cluster-up.sh") }

func clusterScript(t *testing.T, script string, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join("..", "deploy", "cluster", script), args...)
	// A broker restarted after SIGKILL recovers its logs first: on a loaded machine that can
	// take longer than cluster-up's default 120 s.
	cmd.Env = append(os.Environ(), "TOLLGATE_SERVICES_TIMEOUT=300")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s %v:\n%s", script, args, out)
	t.Logf("%s %s: %s", script, strings.Join(args, " "), summary(string(out)))
}

// summary is the line of a script's output worth logging: cluster-up's "ready", else the last.
func summary(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		if strings.Contains(l, "ready (") {
			return l
		}
	}
	return lines[len(lines)-1]
}

// replicaDB opens the run's database on one replica alone.
func replicaDB(t *testing.T, p *pipeline, addr string) *audit.DB {
	c := *p.cfg
	c.ClickHouse.Addr = addr
	db, err := audit.Open(context.Background(), &c)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

func decisionRows(t *testing.T, db *audit.DB, database string) uint64 {
	rows, err := db.Query(context.Background(), "SELECT count() FROM "+database+".decisions")
	require.NoError(t, err)
	defer rows.Close()
	var n uint64
	if rows.Next() {
		require.NoError(t, rows.Scan(&n))
	}
	return n
}

// dropOnCluster drops the run's database on every replica.
func dropOnCluster(t *testing.T, p *pipeline, addr string) {
	c := *p.cfg
	c.ClickHouse.Addr = addr
	if db, err := audit.Open(context.Background(), &c); err == nil {
		_ = db.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+p.db+"` ON CLUSTER `"+clusterName+"`")
		db.Close()
	}
}
