package googleads

import (
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/standin"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sinktest"
)

func TestSuite(t *testing.T) {
	sinktest.Run(t, sinktest.Case{
		Type: "google_ads", Kind: "google_ads",
		Dest:  testDest,
		New:   newAdapter,
		Event: testEvent,
		// Google Ads can match a conversion only by a hashed email or phone or a click id.
		Refused: func(now time.Time) *schemas.FilteredEvent {
			return &schemas.FilteredEvent{EventID: "anon", Event: "purchase", TimestampMs: now.UnixMilli(),
				Fields: map[string]string{"properties.email": `"ann@example.com"`}}
		},
		Raw: []string{"ann@example.com", "+16505551212"},
		// Google Ads dedups on the transaction (order) id, the event id when there is no order id.
		DedupIDs: func(r standin.Request) []string { return r.EventIDs },
	})
}
