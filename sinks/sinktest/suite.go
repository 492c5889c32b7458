package sinktest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/internal/standin"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// Case describes one vendor to the suite.
type Case struct {
	// Type is the policy destination type; Kind the stand-in that plays the vendor
	// (internal/standin; the same name today, kept apart so a stand-in may play several types).
	Type, Kind string
	// Dest builds a destination whose endpoint (or url) is the stand-in's base URL; its Hash
	// list must name the hashed fields Event carries.
	Dest func(endpoint string) *policy.Destination
	// New builds the adapter for a destination.
	New func(t testing.TB, d *policy.Destination) sdk.Adapter
	// Event builds a sample event the vendor takes, with the given id and time.
	Event func(id string, ts time.Time) *schemas.FilteredEvent
	// Refused builds an event the vendor could never take (too old, no identifier, ...), which
	// Validate must refuse; nil when the vendor has no such rule.
	Refused func(now time.Time) *schemas.FilteredEvent
	// Raw are the raw values (e-mail, phone) behind the digests in Event's hashed fields: none
	// may reach the request body.
	Raw []string
	// DedupIDs returns the event ids the vendor dedups on, as read from the request; nil when
	// the vendor has no dedup key (GA4).
	DedupIDs func(r standin.Request) []string
}

// Run checks what every adapter must do, against the vendor's stand-in.
func Run(t *testing.T, c Case) {
	t.Helper()
	s := standin.New(c.Kind)
	t.Cleanup(s.Close)
	d := c.Dest(s.URL)
	require.Equal(t, c.Type, d.Type, "Dest builds a destination of type %s", c.Type)
	a := c.New(t, d)
	batch := func(n int) []*schemas.FilteredEvent {
		evs := make([]*schemas.FilteredEvent, n)
		for i := range evs {
			evs[i] = c.Event(fmt.Sprintf("sinktest-%d", i), time.Now().Add(-time.Minute))
		}
		return evs
	}

	t.Run("MaxBatch", func(t *testing.T) {
		s.Reset()
		n := a.MaxBatch()
		require.GreaterOrEqual(t, n, 1)
		full := batch(n)
		require.Equal(t, sdk.Delivered, Send(t, d, a, full).Class)
		require.Len(t, s.Requests(), 1, "a full batch is one request")
		// One more is refused by NewRequest or split by the engine into batches within the limit.
		over := batch(n + 1)
		if _, err := a.NewRequest(t.Context(), over); err == nil {
			parts := sdk.SplitBatch(a, over)
			require.Greater(t, len(parts), 1)
			for _, p := range parts {
				require.LessOrEqual(t, len(p), n)
			}
		}
	})

	t.Run("Endpoint", func(t *testing.T) {
		s.Reset()
		require.Equal(t, sdk.Delivered, Send(t, d, a, batch(1)).Class)
		reqs := s.Requests()
		require.Len(t, reqs, 1, "the request reaches the configured endpoint")
		require.True(t, reqs[0].Accepted, "the stand-in accepts the request as the vendor would")
	})

	t.Run("Classify", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			fault standin.Fault
			class sdk.Class
			wait  time.Duration
		}{
			{"429 Retry-After", standin.Fault{Status: 429, RetryAfter: "7"}, sdk.Retry, 7 * time.Second},
			{"503", standin.Fault{Status: 503}, sdk.Retry, 0},
			{"500", standin.Fault{Status: 500}, sdk.Retry, 0},
			{"403", standin.Fault{Status: 403}, sdk.Permanent, 0},
			{"reset", standin.Fault{Reset: true}, sdk.Retry, 0},
		} {
			s.Reset()
			s.SetFailures(tc.fault)
			v := Send(t, d, a, batch(1))
			require.Equal(t, tc.class, v.Class, tc.name)
			if tc.wait > 0 {
				require.Equal(t, tc.wait, v.RetryAfter, tc.name)
			}
		}
	})

	t.Run("Validate", func(t *testing.T) {
		now := time.Now()
		require.NoError(t, a.Validate(c.Event("fresh", now.Add(-time.Minute)), now))
		if c.Refused != nil {
			require.Error(t, a.Validate(c.Refused(now), now))
		}
	})

	t.Run("HashedFieldsStayHashed", func(t *testing.T) {
		require.NotEmpty(t, d.Hash, "Dest names the hashed fields")
		require.NotEmpty(t, c.Raw, "Raw names the values behind the digests")
		s.Reset()
		require.Equal(t, sdk.Delivered, Send(t, d, a, batch(1)).Class)
		body := strings.ToLower(string(s.Requests()[0].Body))
		for _, raw := range c.Raw {
			require.NotContains(t, body, strings.ToLower(raw))
		}
	})

	t.Run("DedupKey", func(t *testing.T) {
		if c.DedupIDs == nil {
			t.Skip("the vendor has no dedup key")
		}
		s.Reset()
		// One event: a batch's dedup key may be derived from all its ids (webhook-id).
		evs := batch(1)
		require.Equal(t, sdk.Delivered, Send(t, d, a, evs).Class)
		var want []string
		for _, ev := range evs {
			want = append(want, ev.EventID)
		}
		require.Equal(t, want, c.DedupIDs(s.Requests()[0]))
	})
}
