package webhook

import (
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/internal/standin"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sinktest"
)

// digest stands for a hashed e-mail as the consent processor writes it.
const digest = "a5ba5d3ebd5bf4ab4ef1a4f1d8cbcd2e3a0bd5b1a4e1d2c3b4a5968778695a4b"

func TestSuite(t *testing.T) {
	sinktest.Run(t, sinktest.Case{
		Type: "webhook", Kind: "webhook",
		Dest: func(endpoint string) *policy.Destination {
			d := testDest(endpoint + "/hook")
			d.Fields = append(d.Fields, "properties.email")
			d.Hash = []string{"properties.email"}
			return d
		},
		New: newAdapter,
		Event: func(id string, ts time.Time) *schemas.FilteredEvent {
			ev := testEvent(id, ts)
			ev.Fields["properties.email"] = `"` + digest + `"`
			return ev
		},
		// A webhook takes any event: Validate refuses nothing.
		Raw: []string{"ann@example.com"},
		// Receivers dedup on the webhook-id header: the event id for a single event.
		DedupIDs: func(r standin.Request) []string { return []string{r.Header.Get("webhook-id")} },
	})
}
