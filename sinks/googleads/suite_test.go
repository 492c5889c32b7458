package googleads

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
		Kind:      "google_ads",
		Dest:      testDest,
		New:       func(d *policy.Destination) (sdk.Adapter, error) { return New(d, env) },
		Event:     func(id string) *schemas.FilteredEvent { return testEvent(id, time.Now()) },
		MaxBatch:  MaxBatch,
		OverBatch: &sdk.Verdict{Class: sdk.Permanent, Reason: "invalid_argument"},
		Hashed:    []string{"properties.email", "properties.phone"},
	})
}
