package standin

import (
	"context"
	"io"
	"time"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// Deliver makes one delivery attempt the way the runner does — NewRequest, the destination's
// guarded HTTP client, Classify — so adapter tests exercise the real request against a stand-in
// without Kafka. A transport failure is returned as the error.
func Deliver(ctx context.Context, dest *policy.Destination, a sdk.Adapter, batch []*schemas.FilteredEvent) (sdk.Verdict, error) {
	req, err := a.NewRequest(ctx, batch)
	if err != nil {
		return sdk.Verdict{}, err
	}
	resp, err := sdk.NewHTTPClient(dest, sdk.RequestTimeout(a, 10*time.Second)).Do(req)
	if err != nil {
		return sdk.Verdict{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return sdk.Verdict{}, err
	}
	return a.Classify(resp.StatusCode, resp.Header, body, batch), nil
}
