package ga4

import (
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sinktest"
)

func TestSuite(t *testing.T) {
	sinktest.Run(t, sinktest.Case{
		Type: "ga4", Kind: "ga4",
		Dest: func(endpoint string) *policy.Destination {
			d := testDest(endpoint, "context.page_url", "properties.order_value", "properties.email")
			d.Hash = []string{"properties.email"}
			return d
		},
		New: newAdapter,
		Event: func(id string, ts time.Time) *schemas.FilteredEvent {
			ev := testEvent(id, "a-7f3", ts)
			ev.Fields["properties.email"] = `"` + digest + `"`
			return ev
		},
		Refused: func(now time.Time) *schemas.FilteredEvent {
			return testEvent("old", "a-7f3", now.Add(-MaxAge-time.Hour))
		},
		Raw: []string{"ann@example.com", digest},
		// GA4 has no dedup key.
	})
}
