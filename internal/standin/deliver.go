package standin

import (
	"context"
	"time"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// requestTimeout is delivery.timeout's default: what a runner uses for an adapter that sets none.
const requestTimeout = 10 * time.Second

// Deliver makes one delivery attempt with the engine's own single attempt (sdk.Send) and the
// destination's guarded HTTP client, so adapter tests exercise the real request, response limit
// and classification against a stand-in without Kafka. The verdict is the adapter's reading of
// the answer as Classify gave it (Send's Status cleared, so tests compare with Classify's own
// verdict); an attempt without an answer gets Send's transport verdict (Retry "timeout" or
// "connection_error"). The error is Send's: the adapter could not build the request.
func Deliver(ctx context.Context, dest *policy.Destination, a sdk.Adapter, batch []*schemas.FilteredEvent) (sdk.Verdict, error) {
	v, err := sdk.Send(ctx, sdk.NewHTTPClient(dest, sdk.RequestTimeout(a, requestTimeout)), a, batch)
	v.Status = 0
	return v, err
}
