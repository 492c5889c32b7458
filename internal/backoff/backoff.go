// Package backoff is tollgate's one way to wait between attempts: exponential backoff with full
// jitter, and a Sleep that ends early when its context does. Every retry loop in the code base
// (vendor retries, ClickHouse inserts, offset listing while a topic is being created) uses it, so
// the retry behaviour is written, tuned and tested in one place.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy describes an exponential backoff. The zero value waits not at all.
type Policy struct {
	// Initial is the ceiling of the first wait; it doubles with each attempt.
	Initial time.Duration
	// Max caps the ceiling of any wait.
	Max time.Duration
}

// Ceil is the largest wait before attempt n (1-based): Initial × 2^(n-1), capped by Max.
func (p Policy) Ceil(attempt int) time.Duration {
	c := p.Initial << min(max(attempt-1, 0), 30)
	if c > p.Max || c <= 0 {
		c = p.Max
	}
	return c
}

// Full is the wait before attempt n with full jitter: uniform in [0, Ceil(n)]. Full jitter
// spreads the retries of many clients that failed together (AWS architecture blog, "Exponential
// Backoff And Jitter"), which matters when a vendor or ClickHouse comes back after an outage.
func (p Policy) Full(attempt int) time.Duration {
	return time.Duration(rand.Int64N(int64(p.Ceil(attempt)) + 1))
}

// Equal is the wait before attempt n with "equal" jitter: uniform in [Ceil/2, Ceil]. Loops that
// must not hammer a server that is down (the audit writer's inserts) use it, so no wait is near 0.
func (p Policy) Equal(attempt int) time.Duration {
	c := p.Ceil(attempt)
	return c/2 + time.Duration(rand.Int64N(int64(c/2)+1))
}

// Sleep waits for d or until ctx ends, whichever comes first, and returns ctx.Err() in the latter
// case (nil otherwise). A non-positive d returns at once.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
