package sinktest_test

import (
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
	"github.com/tollgate-dev/tollgate/sinks/sinktest"
	"github.com/tollgate-dev/tollgate/sinks/webhook"
)

// recorder is a T that records a failure instead of failing the test running the suite.
type recorder struct {
	failed   bool
	skipped  bool
	msgs     []string
	cleanups []func()
}

func (r *recorder) Errorf(format string, args ...any) {
	r.failed = true
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}
func (r *recorder) FailNow()         { r.failed = true; runtime.Goexit() }
func (r *recorder) Helper()          {}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Skip(...any)      { r.skipped = true; runtime.Goexit() }

// check runs one check of the suite and says whether it failed.
func check(name string, c sinktest.Case) bool {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, ch := range sinktest.Checks {
			if ch.Name == name {
				ch.Check(r, c)
			}
		}
	}()
	<-done
	for _, f := range r.cleanups {
		f()
	}
	return r.failed
}

func env(string) (string, bool) { return "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", true }

// webhookCase is a correct case (the webhook adapter), which the broken ones below start from.
func webhookCase() sinktest.Case {
	return sinktest.Case{
		Kind: "webhook",
		Dest: func(url string) *policy.Destination {
			return &policy.Destination{Name: "ops", Type: "webhook", Purpose: "necessary",
				Fields: []string{"user_id", "properties.email"},
				Config: map[string]any{"url": url + "/hook", "secret_env": "HOOK_SECRET", "allow_private_network": true}}
		},
		New: func(d *policy.Destination) (sdk.Adapter, error) { return webhook.New(d, env) },
		Event: func(id string) *schemas.FilteredEvent {
			return &schemas.FilteredEvent{EventID: id, Event: "signup", TimestampMs: time.Now().UnixMilli(), UserKey: "u-1",
				Fields: map[string]string{"user_id": `"u-1"`}}
		},
		MaxBatch: webhook.DefaultMaxBatch,
	}
}

// misread wraps an adapter whose Classify calls every temporary failure permanent.
type misread struct{ sdk.Adapter }

func (m misread) Classify(status int, h http.Header, body []byte, batch []*schemas.FilteredEvent) sdk.Verdict {
	v := m.Adapter.Classify(status, h, body, batch)
	if v.Class == sdk.Retry {
		v.Class = sdk.Permanent
	}
	return v
}

func TestChecksPassForACorrectAdapter(t *testing.T) {
	for _, ch := range sinktest.Checks {
		require.False(t, check(ch.Name, webhookCase()), ch.Name)
	}
}

func TestChecksFail(t *testing.T) {
	c := webhookCase()
	c.MaxBatch++
	require.True(t, check("max_batch", c), "a MaxBatch that is not the vendor's limit")

	c = webhookCase()
	c.New = func(d *policy.Destination) (sdk.Adapter, error) {
		a, err := webhook.New(d, env)
		return misread{a}, err
	}
	require.True(t, check("statuses", c), "5xx read as permanent")

	c = webhookCase()
	// The webhook sends fields as they are: had the policy hashed one, a raw value would leak.
	c.Hashed = []string{"properties.email"}
	require.True(t, check("no_raw_identifier", c), "a raw value in a hashed field sent as is")

	c = webhookCase()
	c.Kind = "meta_capi" // the webhook's request, sent to Meta's stand-in, is refused
	require.True(t, check("delivers", c), "a request the vendor refuses")
}
