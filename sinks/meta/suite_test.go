package meta

import (
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
	"github.com/tollgate-dev/tollgate/sinks/sinktest"
)

// TestSuite: MaxBatch is exactly Meta's limit (the stand-in takes 1000 events and refuses 1001).
func TestSuite(t *testing.T) {
	sinktest.Run(t, sinktest.Case{
		Kind:      "meta_capi",
		Dest:      func(url string) *policy.Destination { return testDest(url, nil) },
		New:       func(d *policy.Destination) (sdk.Adapter, error) { return New(d, env) },
		Event:     func(id string) *schemas.FilteredEvent { return testEvent(id, time.Now()) },
		MaxBatch:  1000,
		OverBatch: &sdk.Verdict{Class: sdk.Permanent, Reason: "graph_error_100", Split: true},
		Hashed:    []string{"properties.email", "properties.phone"},
	})
}
