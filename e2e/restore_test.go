package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/internal/sample"
	"github.com/tollgate-dev/tollgate/schemas"
)

const restoreUsers = 1_000_000

// TestRestoreMillionUsers fills the consent-state changelog with 1,000,000 users (every tenth
// refusing marketing) and starts the processor: a cold start reads the whole changelog into the
// partitions' state stores. Killed with SIGKILL and started again (warm: the stores are on disk
// with their offsets), it reads only the changelog's tail, here nothing. Started once more with
// the state folder deleted (cold), it rebuilds everything. The restored refusals are enforced.
// It logs the restore times and the processor's resident memory.
func TestRestoreMillionUsers(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("writes a million records to the real broker")
	}
	p := newPipeline(t)
	fillConsentState(t, p.cfg)
	p.spawn("ingest", nil, "ingest")
	p.waitReady()
	p.spawn("audit", nil, "audit")

	proc := p.spawn("processor", []string{"TOLLGATE_PROCESSOR_INSTANCE=r"}, "process")
	took, read := waitRestored(t, proc, 1)
	t.Logf("first start (cold): %d changelog records read in %s, processor RSS %s", read, took, rss(proc))
	require.Equal(t, restoreUsers, read)

	proc.Kill9()
	proc.start()
	took, read = waitRestored(t, proc, 2)
	t.Logf("after kill -9 (warm): %d changelog records read in %s, processor RSS %s", read, took, rss(proc))
	require.Zero(t, read, "a warm restart reads only the changelog's tail, and nothing was added")

	proc.Kill9()
	require.NoError(t, os.RemoveAll(p.cfg.StatePath()))
	proc.start()
	took, read = waitRestored(t, proc, 3)
	t.Logf("state folder deleted (cold): %d changelog records read in %s, processor RSS %s", read, took, rss(proc))
	require.Equal(t, restoreUsers, read, "a cold restart rebuilds the stores from the changelog")

	// The restored refusals are enforced: user 0 refused marketing, user 1 did not.
	events := append(userEvents("r-0", "probe", 5), userEvents("r-1", "probe", 5)...)
	_, err := sample.Send(p.ingestURL, writeKey, events)
	require.NoError(t, err)
	waitDecisions(t, p, "event_id LIKE 'ev-r-%-probe-%'", 3*len(events))
	got := decisionCounts(t, p)
	require.Equal(t, 5, got["u-r-0/meta/blocked/withdrawn"], "%v", got)
	require.Equal(t, 5, got["u-r-1/meta/forwarded/consented"], "%v", got)
}

// fillConsentState writes restoreUsers changelog records straight to the consent-state topic,
// keyed and partitioned like the processor writes them.
func fillConsentState(t *testing.T, cfg *config.Config) {
	ctx := context.Background()
	cl, err := kafka.NewClient(cfg, zap.NewNop(), kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(100_000))
	require.NoError(t, err)
	defer cl.Close()
	require.NoError(t, kafka.EnsureTopics(ctx, cfg, cl))
	topic := cfg.Topic(config.TopicState)
	var (
		mu       sync.Mutex
		firstErr error
	)
	start := time.Now()
	for i := range restoreUsers {
		u := &schemas.ConsentUpdate{UserKey: fmt.Sprintf("u-r-%d", i), NoticeVersion: "v3", TimestampMs: start.UnixMilli(),
			Consent: map[string]bool{"necessary": true, "analytics": true, "marketing": i%10 != 0}}
		b, err := schemas.ConsentUpdates.Encode(u)
		require.NoError(t, err)
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(u.UserKey), Value: b}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
		})
	}
	require.NoError(t, cl.Flush(ctx))
	require.NoError(t, firstErr)
	t.Logf("wrote %d consent-state records in %s", restoreUsers, time.Since(start).Round(time.Millisecond))
}

// waitRestored waits for the nth start's "consent state restored" log lines to account for every
// partition and returns the time the restores took and the changelog records they read.
func waitRestored(t *testing.T, c *proc, nth int) (time.Duration, int) {
	var took time.Duration
	var read int
	require.Eventually(t, func() bool {
		starts, parts := 0, 0
		took, read = 0, 0
		sc := bufio.NewScanner(strings.NewReader(c.logs.String()))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line struct {
				Msg        string
				Partitions []int32
				Records    int
				Took       float64 // seconds: zap's JSON encoding of a duration
			}
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			switch line.Msg {
			case "consent processor started":
				starts, parts, took, read = starts+1, 0, 0, 0
			case "consent state restored":
				d := time.Duration(line.Took * float64(time.Second))
				parts, took, read = parts+len(line.Partitions), took+d, read+line.Records
			}
		}
		return starts == nth && parts == c.p.cfg.Kafka.Partitions
	}, 5*time.Minute, 200*time.Millisecond, "the processor never restored all partitions; logs:\n%s", c.logs)
	return took, read
}

// rss is the process's resident set size, from /proc.
func rss(c *proc) string {
	pid := c.Pid()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:"))
		}
	}
	return "unknown"
}
