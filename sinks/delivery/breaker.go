package delivery

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/tollgate-dev/tollgate/internal/backoff"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// errExcluded reports a request whose outcome must not count for the breaker (shutdown).
var errExcluded = errors.New("excluded")

// errVendorFailing is what a temporary failure counts as for the breaker.
var errVendorFailing = errors.New("temporary failure")

// breaker is a destination's circuit breaker: after failures consecutive temporary failures it
// opens for openFor, during which nothing is sent; then one probe request decides whether it
// closes or opens again. sdk.Permanent answers count as successes — the vendor is up, it only
// refused those events.
type breaker struct {
	cb        *gobreaker.TwoStepCircuitBreaker[struct{}]
	openFor   time.Duration
	openUntil atomic.Int64 // Unix ms until which an open breaker sends nothing
	now       func() time.Time
}

func newBreaker(dest string, failures int, openFor time.Duration, now func() time.Time) *breaker {
	b := &breaker{openFor: openFor, now: now}
	gauge := breakerOpen.WithLabelValues(dest)
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        dest,
		MaxRequests: 1,
		Timeout:     openFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(failures) },
		IsExcluded:  func(err error) bool { return errors.Is(err, errExcluded) },
		// Called under the breaker's lock: touch only our own fields.
		OnStateChange: func(_ string, _, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.openUntil.Store(now().Add(openFor).UnixMilli())
			}
			if to == gobreaker.StateClosed {
				gauge.Set(0)
			} else {
				gauge.Set(1)
			}
		},
	})
	return b
}

// admit asks to send one request. It returns the callback reporting the outcome, or, when the
// breaker refuses, the time it expects to let a request through. With wait, it waits for that
// time instead of refusing (the retry consumer waits; the main consumer hands events over to the
// retry topic so its partition keeps moving). A wait ends early with ctx's error.
func (b *breaker) admit(ctx context.Context, wait bool) (func(error), time.Time, error) {
	for {
		done, err := b.cb.Allow()
		if err == nil {
			return done, time.Time{}, nil
		}
		until := time.UnixMilli(b.openUntil.Load())
		if errors.Is(err, gobreaker.ErrTooManyRequests) || !until.After(b.now()) {
			until = b.now().Add(min(b.openFor, time.Second)) // a probe is in flight: check again soon
		}
		if !wait {
			return nil, until, err
		}
		if err := backoff.Sleep(ctx, until.Sub(b.now())); err != nil {
			return nil, b.now(), err
		}
	}
}

// breakerResult is the breaker's reading of a verdict.
func breakerResult(v sdk.Verdict) error {
	if v.Class == sdk.Retry {
		return errVendorFailing
	}
	return nil
}
