package tiktok

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
		Kind:      "tiktok",
		Dest:      testDest,
		New:       func(d *policy.Destination) (sdk.Adapter, error) { return New(d, env) },
		Event:     func(id string) *schemas.FilteredEvent { return testEvent(id, time.Now()) },
		MaxBatch:  1000,
		OverBatch: &sdk.Verdict{Class: sdk.Permanent, Reason: "tiktok_code_40002", Split: true},
		Hashed:    []string{"user_id", "properties.email", "properties.phone"},
	})
}
