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

// DeliveryTimeout is the config's default delivery.timeout, read from the config package (not a
// copy of it) so tests use the deadline a deployment that leaves it unset uses.
func DeliveryTimeout() time.Duration {
	timeoutOnce.Do(func() {
		noEnv := func(string) (string, bool) { return "", false }
		cfg, err := config.Parse("sinktest.yaml", []byte("ingest: {write_keys: [sinktest]}\n"), noEnv)
		if err != nil {
			panic("sinktest: config defaults: " + err.Error())
		}
		timeout = cfg.Delivery.Timeout
	})
	return timeout
}

// Attempt makes one delivery attempt exactly as the engine does: sdk.Send through the
// destination's guarded HTTP client with the adapter's timeout, or the default delivery.timeout.
// The verdict is the adapter's reading as Classify gave it (Send's Status cleared, so tests compare
// with Classify's own verdicts); an attempt without an answer gets Send's transport verdict (Retry
// "timeout" or "connection_error"). The error is Send's: the adapter could not build the request.
func Attempt(ctx context.Context, dest *policy.Destination, a sdk.Adapter, batch []*schemas.FilteredEvent) (sdk.Verdict, error) {
	v, err := sdk.Send(ctx, sdk.NewHTTPClient(dest, sdk.RequestTimeout(a, DeliveryTimeout()), 1), a, batch)
	v.Status = 0
	return v, err
}

// Send is Attempt for a batch the adapter must be able to build.
func Send(t testing.TB, dest *policy.Destination, a sdk.Adapter, batch []*schemas.FilteredEvent) sdk.Verdict {
	t.Helper()
	v, err := Attempt(t.Context(), dest, a, batch)
	require.NoError(t, err)
	return v
}
