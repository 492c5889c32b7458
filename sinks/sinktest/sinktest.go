// Package sinktest is the conformance suite every vendor package runs from its own test: the
// facts any adapter must hold against its vendor's stand-in (internal/standin), through the
// engine's own single attempt (sdk.Send). A vendor package's tests then keep only its vendor's
// facts: request format, config errors, its error bodies.
package sinktest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/internal/standin"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// rawIdentifier is what a hashed field would hold if raw PII slipped past the processor.
const rawIdentifier = "jane.doe@example.com"

// Case describes one vendor to the suite.
type Case struct {
	// Kind is the destination type, which is also the stand-in's kind.
	Kind string
	// Dest returns a valid destination whose endpoint is url (the stand-in's), private network
	// allowed.
	Dest func(url string) *policy.Destination
	// New builds the adapter from a destination, with the test's environment.
	New func(d *policy.Destination) (sdk.Adapter, error)
	// Event returns a valid event with the given id, decided now; events of one call to Run
	// share their user, so any number of them fits one request.
	Event func(id string) *schemas.FilteredEvent
	// MaxBatch is the vendor's documented limit of events per request.
	MaxBatch int
	// OverBatch, when set, is the verdict for one event more than MaxBatch in one request (the
	// stand-in enforces the vendor's limit); nil when the vendor's API has no limit to enforce.
	OverBatch *sdk.Verdict
	// NoEventIDs says the vendor's API carries no event id (GA4), so the stand-in cannot report
	// which events it took, only how many requests.
	NoEventIDs bool
	// Hashed are the paths of Event's fields the vendor receives hashed (policy hash:).
	Hashed []string
}

// T is what a check needs of a test (a *testing.T; the suite's own test passes a recorder).
type T interface {
	require.TestingT
	Helper()
	Cleanup(func())
	Skip(args ...any)
}

// Checks are the suite's checks by name, in the order Run runs them.
var Checks = []struct {
	Name  string
	Check func(T, Case)
}{
	{"delivers", delivers},
	{"max_batch", maxBatch},
	{"statuses", statuses},
	{"no_raw_identifier", noRawIdentifier},
}

// Run runs the suite for one vendor, each check as a subtest.
func Run(t *testing.T, c Case) {
	for _, ch := range Checks {
		t.Run(ch.Name, func(t *testing.T) { ch.Check(t, c) })
	}
}

func setup(t T, c Case) (*standin.Server, *policy.Destination, sdk.Adapter) {
	t.Helper()
	s := standin.New(c.Kind)
	t.Cleanup(s.Close)
	d := c.Dest(s.URL)
	a, err := c.New(d)
	require.NoError(t, err)
	return s, d, a
}

func batchOf(c Case, n int) []*schemas.FilteredEvent {
	batch := make([]*schemas.FilteredEvent, n)
	for i := range batch {
		batch[i] = c.Event("e" + strconv.Itoa(i))
	}
	return batch
}

// delivers: a valid event passes Validate, is taken by the vendor and reaches it by its id.
func delivers(t T, c Case) {
	s, d, a := setup(t, c)
	ev := c.Event("e-1")
	require.NoError(t, a.Validate(ev, time.Now()))
	v, err := Attempt(context.Background(), d, a, []*schemas.FilteredEvent{ev})
	require.NoError(t, err)
	require.Equal(t, sdk.Delivered, v.Class, "%+v", v)
	require.Empty(t, v.Reason)
	require.Len(t, s.Requests(), 1)
	if !c.NoEventIDs {
		require.Equal(t, []string{"e-1"}, s.EventIDs())
	}
}

// maxBatch: the adapter's MaxBatch is the vendor's limit, a full batch is one request the
// vendor takes, and (where the vendor has a limit) one event more is refused.
func maxBatch(t T, c Case) {
	s, d, a := setup(t, c)
	require.Equal(t, c.MaxBatch, a.MaxBatch())
	batch := batchOf(c, c.MaxBatch+1)
	require.Len(t, sdk.SplitBatch(a, batch[:c.MaxBatch]), 1, "a full batch of one user is one request")
	v, err := Attempt(context.Background(), d, a, batch[:c.MaxBatch])
	require.NoError(t, err)
	require.Equal(t, sdk.Delivered, v.Class, "%+v", v)
	require.Len(t, s.Requests(), 1)
	if !c.NoEventIDs {
		require.Len(t, s.EventIDs(), c.MaxBatch)
	}
	if c.OverBatch != nil {
		v, _ = Attempt(context.Background(), d, a, batch)
		require.Equal(t, *c.OverBatch, v)
	}
}

// statuses: the standard answers are read the same way by every adapter: 429 and 5xx are
// temporary (a Retry-After is obeyed), other 4xx permanent, a broken connection temporary.
// Reasons are the vendor's (the stand-ins answer with its error bodies), so only their presence
// is checked here.
func statuses(t T, c Case) {
	s, d, a := setup(t, c)
	batch := []*schemas.FilteredEvent{c.Event("e-1")}
	send := func(f standin.Fault) sdk.Verdict {
		t.Helper()
		s.SetFailures(f)
		v, err := Attempt(context.Background(), d, a, batch)
		require.NoError(t, err)
		return v
	}
	v := send(standin.Fault{Status: 429, RetryAfter: "7"})
	require.Equal(t, sdk.Retry, v.Class, "429: %+v", v)
	require.Equal(t, 7*time.Second, v.RetryAfter, "429 Retry-After")
	require.NotEmpty(t, v.Reason)
	v = send(standin.Fault{Status: 503, RetryAfter: "Wed, 21 Oct 2015 07:28:00 GMT"})
	require.Equal(t, sdk.Retry, v.Class, "503 with a past HTTP date: %+v", v)
	require.Zero(t, v.RetryAfter, "a Retry-After in the past asks for no wait")
	for _, status := range []int{500, 502, 503, 504} {
		v := send(standin.Fault{Status: status})
		require.Equal(t, sdk.Retry, v.Class, "%d: %+v", status, v)
		require.NotEmpty(t, v.Reason, "%d", status)
	}
	for _, status := range []int{401, 403, 404} {
		v := send(standin.Fault{Status: status})
		require.Equal(t, sdk.Permanent, v.Class, "%d: %+v", status, v)
		require.NotEmpty(t, v.Reason, "%d", status)
	}
	v = send(standin.Fault{Reset: true})
	require.Equal(t, sdk.Verdict{Class: sdk.Retry, Reason: "connection_error"}, v)
	v, err := Attempt(context.Background(), d, a, batch)
	require.NoError(t, err)
	require.Equal(t, sdk.Delivered, v.Class, "faults used up: %+v", v)
}

// noRawIdentifier: a raw value in a field the policy hashes (a processor bug) never reaches the
// vendor: either Validate refuses the event or the request leaves the value out.
func noRawIdentifier(t T, c Case) {
	if len(c.Hashed) == 0 {
		t.Skip("the vendor receives no hashed field")
	}
	s, d, a := setup(t, c)
	for _, path := range c.Hashed {
		ev := c.Event("raw-" + path)
		ev.Fields[path] = strconv.Quote(rawIdentifier)
		if a.Validate(ev, time.Now()) != nil {
			continue
		}
		_, err := Attempt(context.Background(), d, a, []*schemas.FilteredEvent{ev})
		if err != nil {
			require.NotContains(t, err.Error(), rawIdentifier, path)
		}
	}
	for _, r := range s.Requests() {
		require.NotContains(t, r.Query.Encode(), "jane.doe", r.Path)
		require.NotContains(t, strings.ToLower(string(r.Body)), "jane.doe", r.Path)
	}
}
