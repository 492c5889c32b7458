package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
)

// childWriterEnv makes the test binary run one audit writer (runChildWriter) instead of the
// tests: the crash test kills that process with SIGKILL, which no in-process writer can model.
const childWriterEnv = "TOLLGATE_TEST_CHILD_WRITER"

type childSpec struct {
	Config config.Config
	Group  string
	// KillAfter is the flush after whose inserts, before its commit, the process kills itself.
	KillAfter int
}

func runChildWriter(specJSON string) int {
	var spec childSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "child writer:", err)
		return 2
	}
	w := New(&spec.Config, zap.NewNop())
	w.group = spec.Group
	// The group waits this long for a dead member before handing its partitions on.
	w.kafkaOpts = []kgo.Opt{kgo.SessionTimeout(6 * time.Second)}
	flushes := 0
	w.afterInsert = func() {
		if flushes++; flushes == spec.KillAfter {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL) // a crash: no final flush, no commit
		}
	}
	if err := w.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "child writer:", err)
		return 1
	}
	return 0
}

// The audit writer is killed (SIGKILL) mid-batch: after a batch's rows are inserted and before
// its offsets are committed. Restarted, it reads that batch again and inserts it again; the
// documented query form (FINAL) still shows every decision exactly once, and nothing is lost.
func TestWriterKilledMidBatchNoLossNoDuplicate(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.ClickHouse.BatchSize = 400
	cfg.ClickHouse.FlushInterval = time.Minute // flush by size only: the kill lands on a full batch
	createTopics(t, cfg)
	db := openDB(t, cfg)
	group := testGroup(t, cfg)
	p := producer(t, cfg)

	const total = 3000
	var recs []*kgo.Record
	for i := range total {
		recs = append(recs, decisionRecord(t, cfg, int32(i%3), testDecision(i)))
	}
	produce(t, p, recs...)

	spec, err := json.Marshal(childSpec{Config: *cfg, Group: group, KillAfter: 3})
	require.NoError(t, err)
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childWriterEnv+"="+string(spec))
	out, err := child.CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "the child must die by SIGKILL; output: %s", out)
	require.Equal(t, syscall.SIGKILL, exit.Sys().(syscall.WaitStatus).Signal())

	inserted, committedAtCrash := countRaw(t, db, "decisions"), committed(t, cfg, group)
	require.GreaterOrEqual(t, inserted, uint64(3*400), "three batches inserted")
	require.Less(t, committedAtCrash, int64(inserted), "the last inserted batch was not committed")

	log, _ := testLogger(t)
	cfg.ClickHouse.FlushInterval = 100 * time.Millisecond // the restarted writer also flushes the tail
	w := startWriter(t, cfg, group, log)
	require.Eventually(t, func() bool { return polledCommitted(t, cfg, group) == int64(total) }, waitFor, 50*time.Millisecond)
	require.NoError(t, w.stop())

	var rows, keys uint64
	require.NoError(t, db.QueryRow(context.Background(), "SELECT count(), uniqExact(event_id, destination, run_id) FROM "+
		db.table("decisions")+" FINAL").Scan(&rows, &keys))
	require.Equal(t, uint64(total), rows)
	require.Equal(t, uint64(total), keys)
	got := readDecisions(t, db, "decisions") // fails on a duplicate id
	for i := range total {
		d := testDecision(i)
		require.Equal(t, truncated(d), got[d.DecisionID])
	}
	require.Len(t, readDecisions(t, db, "decisions_by_user"), total)
	_, err = db.CountDays(context.Background(), time.Now())
	require.NoError(t, err)
	summary, err := db.Summary(context.Background())
	require.NoError(t, err)
	var counted uint64
	for _, r := range summary {
		counted += r.Count
	}
	require.Equal(t, uint64(total), counted, "the day's counts do not double count either")
}
