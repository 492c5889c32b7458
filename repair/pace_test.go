package repair

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
)

// A rate budget hands events on in chunks of a tenth of a second's budget, never more than a
// batch; without one, a batch at a time.
func TestGateChunks(t *testing.T) {
	for _, tc := range []struct {
		rate  float64
		chunk int
	}{{0, 1000}, {1000, 100}, {5, 1}, {50000, 1000}} {
		g, closeGate, err := newGate(&config.Config{}, zap.NewNop(), withDefaults(Options{Rate: tc.rate}))
		require.NoError(t, err)
		closeGate()
		require.Equal(t, tc.chunk, g.chunk, "rate %v", tc.rate)
		require.Equal(t, tc.rate == 0, g.limiter == nil)
	}
}

// The gate holds the repair while live traffic lags more than yieldLag, and while the lag cannot
// be read; it lets it go once the lag is back under.
func TestGateWaitsForLiveTraffic(t *testing.T) {
	lags := []int64{50_000, -1, 20_001, 20_000}
	reads := 0
	g := &gate{chunk: 10, yieldLag: 20_000, every: time.Millisecond, log: zap.NewNop(),
		lagOf: func(context.Context) (int64, error) {
			l := lags[min(reads, len(lags)-1)]
			reads++
			if l < 0 {
				return 0, context.DeadlineExceeded
			}
			return l, nil
		}}
	require.NoError(t, g.wait(context.Background(), 10))
	require.Equal(t, 4, reads, "it waited through three readings over the limit or unread")
	require.Positive(t, g.paused)

	// Read at most once an interval: a chunk right after passes without asking Kafka.
	g.every = time.Hour
	require.NoError(t, g.wait(context.Background(), 10))
	require.Equal(t, 4, reads)

	// A repair stopped while it waits ends with the context.
	g.every, lags, reads = time.Millisecond, []int64{50_000}, 0
	g.checked = time.Time{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, g.wait(ctx, 10), context.Canceled)
}

// The gate holds the repair while the machine's other processes keep more than yieldCPU of its
// CPUs busy, and lets it go once they leave room; a first reading (nothing to compare with yet)
// and a failed one do not hold it.
func TestGateYieldsTheCPU(t *testing.T) {
	type reading struct {
		share float64
		ok    bool
		err   error
	}
	for _, tc := range []struct {
		name     string
		readings []reading
		reads    int
	}{
		{"saturated, then room", []reading{{0.97, true, nil}, {0.95, true, nil}, {0.6, true, nil}}, 3},
		{"first reading", []reading{{0, false, nil}}, 1},
		{"unreadable", []reading{{0, false, os.ErrNotExist}}, 1},
	} {
		reads, pauses, resumes, lagReads := 0, 0, 0, 0
		var reasons []string
		g := &gate{chunk: 10, yieldCPU: 0.9, every: time.Millisecond, log: zap.NewNop(),
			cpuOf: func() (float64, bool, error) {
				r := tc.readings[min(reads, len(tc.readings)-1)]
				reads++
				return r.share, r.ok, r.err
			},
			onPause: func() { pauses++ }, onResume: func() { resumes++ },
			onWait:   func(reason string, _ time.Duration) { reasons = append(reasons, reason) },
			yieldLag: 20_000, lagOf: func(context.Context) (int64, error) { lagReads++; return 0, nil }}
		require.NoError(t, g.wait(context.Background(), 10), tc.name)
		require.Equal(t, tc.reads, reads, tc.name)
		held := tc.reads > 1
		require.Equal(t, held, g.paused > 0, tc.name)
		require.Equal(t, map[bool]int{true: 1}[held], pauses, "%s: the views stop once as the pause begins", tc.name)
		require.Equal(t, pauses, resumes, "%s: and go on as it ends", tc.name)
		require.Equal(t, 1, lagReads, "%s: the broker is asked only once the CPU leaves room", tc.name)
		if held {
			require.Equal(t, []string{"the machine's other processes keep 97% of its CPUs busy (yield-cpu 0.9)",
				"the machine's other processes keep 95% of its CPUs busy (yield-cpu 0.9)"}, reasons, "why, at each look")
		} else {
			require.Empty(t, reasons, tc.name)
		}
	}
}

// The meter counts the other processes' CPU: the machine's busy time less this process's own,
// over all CPUs' time (a /proc written for the test: 4 s of CPU time passed, 2 s of it busy,
// 1 s of that this process's).
func TestCPUMeterLeavesItsOwnCPUOut(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "4242"), 0o755))
	require.NoError(t, os.Symlink("4242", filepath.Join(dir, "self")))
	write := func(user, idle, selfUtime int) {
		stat := fmt.Sprintf("cpu  %d 0 100 %d 0 0 0 7 0 0\ncpu0 %d 0 100 %d 0 0 0 7 0 0\nbtime 1700000000\n", user, idle, user, idle)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644))
		self := fmt.Sprintf("4242 (tollgate) S 1 4242 4242 0 -1 4194560 100 0 0 0 %d 0 0 0 39 19 8 0 100 1000000 100 "+
			"18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n", selfUtime)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "4242", "stat"), []byte(self), 0o644))
	}
	fs, err := procfs.NewFS(dir)
	require.NoError(t, err)
	m := &cpuMeter{fs: fs}
	write(100, 800, 50)
	_, ok, err := m.othersShare()
	require.NoError(t, err)
	require.False(t, ok, "nothing to compare the first reading with")
	write(300, 1000, 150)
	share, ok, err := m.othersShare()
	require.NoError(t, err)
	require.True(t, ok)
	require.InDelta(t, 0.25, share, 1e-9)
}
