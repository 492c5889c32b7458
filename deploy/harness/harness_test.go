package harness

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestKill9StartAndStop(t *testing.T) {
	p, err := Start("sleeper", "sleep", nil, io.Discard, "60")
	require.NoError(t, err)
	first := p.Pid()
	p.Kill9()
	require.False(t, p.Alive())
	require.NoError(t, p.Start())
	require.True(t, p.Alive())
	require.NotEqual(t, first, p.Pid())
	// sleep dies of SIGTERM: Stop reports the exit status, not a kill after the grace period.
	err = p.Stop()
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrKilled)
	require.False(t, p.Alive())
	require.Equal(t, err, p.Stop(), "stopping a stopped process tells how it ended")
	kills, crashes := p.Counts()
	require.Equal(t, 1, kills)
	require.Zero(t, crashes)
}

func TestSuperviseRestartsWhatExits(t *testing.T) {
	p, err := Start("quitter", "sh", nil, io.Discard, "-c", "sleep 0.05")
	require.NoError(t, err)
	p.Supervise(10 * time.Millisecond)
	require.Eventually(t, func() bool { _, crashes := p.Counts(); return crashes >= 3 }, 10*time.Second, 10*time.Millisecond)
	_ = p.Stop()
	_, crashes := p.Counts()
	require.Never(t, func() bool { _, after := p.Counts(); return after != crashes || p.Alive() },
		300*time.Millisecond, 10*time.Millisecond, "the supervisor restarted a stopped process")
}

func TestWaitReady(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" || calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	p, err := Start("sleeper", "sleep", nil, io.Discard, "60")
	require.NoError(t, err)
	defer p.Stop()
	require.NoError(t, WaitReady(context.Background(), srv.URL, 10*time.Second, p))

	p.Kill9()
	require.ErrorContains(t, WaitReady(context.Background(), srv.URL, 10*time.Second, p), "sleeper exited during start")
}

// ExitCPU reads the rusage of an exited process (the bench's figure for a repair that finished
// during its phases, gone from /proc by then), and nothing while it runs.
func TestExitCPU(t *testing.T) {
	p, err := Start("spinner", "sh", nil, io.Discard, "-c", "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done")
	require.NoError(t, err)
	_, ok := p.ExitCPU()
	require.False(t, ok, "running (the loop takes a good part of a second)")
	<-p.Done()
	cpu, ok := p.ExitCPU()
	require.True(t, ok)
	require.Positive(t, cpu)
}
