// Package sinktest is the conformance suite every vendor package runs from its own tests (Run),
// and Send, the engine's single attempt wired the way the engine wires it. It holds test helpers
// only: import it from _test files, never from production code.
package sinktest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

var (
	timeoutOnce sync.Once
	timeout     time.Duration
)

// deliveryTimeout is the config's default delivery.timeout, read from the config package so the
// tests use the same per-request deadline as a deployment that leaves it unset.
func deliveryTimeout(t testing.TB) time.Duration {
	timeoutOnce.Do(func() {
		noEnv := func(string) (string, bool) { return "", false }
		cfg, err := config.Parse("sinktest.yaml", []byte("ingest: {write_keys: [sinktest]}\n"), noEnv)
		if err == nil {
			timeout = cfg.Delivery.Timeout
		}
	})
	require.NotZero(t, timeout, "sinktest: config default delivery.timeout unreadable")
	return timeout
}

// Send makes one delivery attempt exactly as the engine does: sdk.Send through the destination's
// guarded HTTP client with the adapter's timeout (or the default delivery.timeout). Transport
// failures come back as a Retry verdict, as they do in the engine; only a request that cannot be
// built fails the test.
func Send(t testing.TB, dest *policy.Destination, a sdk.Adapter, batch []*schemas.FilteredEvent) sdk.Verdict {
	t.Helper()
	v, err := SendErr(dest, a, batch, deliveryTimeout(t))
	require.NoError(t, err)
	return v
}

// SendErr is Send for tests that expect NewRequest to refuse the batch.
func SendErr(dest *policy.Destination, a sdk.Adapter, batch []*schemas.FilteredEvent, def time.Duration) (sdk.Verdict, error) {
	client := sdk.NewHTTPClient(dest, sdk.RequestTimeout(a, def))
	return sdk.Send(context.Background(), client, a, batch)
}
