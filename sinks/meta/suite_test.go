package meta

import (
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/internal/standin"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sinktest"
)

func TestSuite(t *testing.T) {
	sinktest.Run(t, sinktest.Case{
		Type: "meta_capi", Kind: "meta_capi",
		Dest:    func(endpoint string) *policy.Destination { return testDest(endpoint, nil) },
		New:     newAdapter,
		Event:   testEvent,
		Refused: func(now time.Time) *schemas.FilteredEvent { return testEvent("old", now.Add(-MaxAge-time.Hour)) },
		Raw:     []string{"ann@example.com", "+16505551212"},
		// Meta dedups on event_id, which the stand-in reads from the body.
		DedupIDs: func(r standin.Request) []string { return r.EventIDs },
	})
}
