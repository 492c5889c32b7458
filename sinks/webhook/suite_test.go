package webhook

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
		Kind:     "webhook",
		Dest:     func(url string) *policy.Destination { return testDest(url + "/hook") },
		New:      func(d *policy.Destination) (sdk.Adapter, error) { return New(d, envWith(secret)) },
		Event:    func(id string) *schemas.FilteredEvent { return testEvent(id, time.Now()) },
		MaxBatch: DefaultMaxBatch,
	})
}
