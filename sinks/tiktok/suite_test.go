package tiktok

import (
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/standin"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sinktest"
)

func TestSuite(t *testing.T) {
	sinktest.Run(t, sinktest.Case{
		Type: "tiktok", Kind: "tiktok",
		Dest:  testDest,
		New:   newAdapter,
		Event: testEvent,
		Refused: func(now time.Time) *schemas.FilteredEvent {
			ev := testEvent("noname", now)
			ev.Event = ""
			return ev
		},
		Raw: []string{"ann@example.com", "+16505551212", "u-42"},
		// TikTok dedups on event_id, which the stand-in reads from the body.
		DedupIDs: func(r standin.Request) []string { return r.EventIDs },
	})
}
