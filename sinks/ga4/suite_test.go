package ga4

import (
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
	"github.com/tollgate-dev/tollgate/sinks/sinktest"
)

func TestSuite(t *testing.T) {
	sinktest.Run(t, sinktest.Case{
		Kind: "ga4",
		Dest: func(url string) *policy.Destination {
			d := testDest(url, "context.page_url", "properties.order_value", "properties.currency", "properties.session_id", "properties.email")
			d.Hash = []string{"properties.email"}
			return d
		},
		New: func(d *policy.Destination) (sdk.Adapter, error) { return New(d, env) },
		Event: func(id string) *schemas.FilteredEvent {
			ev := testEvent(id, "c", time.Now())
			ev.Fields["properties.email"] = `"` + digest + `"`
			return ev
		},
		MaxBatch:   MaxBatch,
		NoEventIDs: true,
		Hashed:     []string{"properties.email"},
	})
}
