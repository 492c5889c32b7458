package delivery_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/standin"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/delivery"
	"github.com/tollgate-dev/tollgate/sinks/registry"
)

// TestLedgerNeverSendsAnEventTwice: events Meta accepted come round again on the destination's
// topic — as after a sink killed before its offset commit, or a processor resending — and a new
// sink process, whose local ledger store is gone (a new machine), must rebuild the ledger from its
// topic and send none of them again, while a new event still goes out. Copies of one event within
// a batch go once too.
func TestLedgerNeverSendsAnEventTwice(t *testing.T) {
	t.Parallel()
	meta := standin.New("meta_capi")
	t.Cleanup(meta.Close)
	e := newBrokerEnv(t, "  max_attempts: 3", fmt.Sprintf(onlyMetaPolicy, meta.URL))
	d := e.followDeliveries()
	var first []*schemas.FilteredEvent
	for i := range 20 {
		ev := filtered("meta", "marketing", fmt.Sprintf("l-%02d", i), fmt.Sprintf("u%d", i%4), nil)
		first = append(first, ev, ev) // each twice in a row: the copy shares the first's batch
	}
	e.produce(first...)

	stop := e.startSink("meta", t.TempDir())
	require.Eventually(t, func() bool { return len(meta.EventIDs()) >= 20 }, 30*time.Second, 50*time.Millisecond)
	stop()

	e.produce(first[:20]...) // ten events round again
	e.produce(filtered("meta", "marketing", "l-new", "u1", nil))
	stop = e.startSink("meta", t.TempDir()) // a cold local store: the ledger topic is the truth
	defer stop()
	require.Eventually(t, func() bool { return len(d.terminal("meta")) == 21 }, 30*time.Second, 50*time.Millisecond)

	got := map[string]int{}
	for _, id := range meta.EventIDs() {
		got[id]++
	}
	require.Len(t, got, 21)
	for id, n := range got {
		require.Equal(t, 1, n, "Meta received %s %d times", id, n)
	}
	delivered := 0
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range d.all {
		if a.Status == delivery.StatusDelivered {
			delivered++
		}
	}
	require.Equal(t, 21, delivered, "one deliveries row per real request")
}

// startSink runs one destination's sink with its own ledger folder until stop is called.
func (e *brokerEnv) startSink(name, ledgerDir string) (stop func()) {
	cfg := *e.cfg
	cfg.Delivery.LedgerDir = ledgerDir
	ad, err := registry.New(cfg.Policy.Destinations[name], func(k string) (string, bool) { v, ok := chaosEnv[k]; return v, ok })
	require.NoError(e.t, err)
	r := delivery.NewRunner(&cfg, cfg.Policy.Destinations[name], ad, e.log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func() {
		cancel()
		require.NoError(e.t, <-done)
	}
}
