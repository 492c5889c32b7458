// Package sdk is what a vendor package implements and the helpers it uses: the Adapter interface
// (build a request for a batch, classify the vendor's answer), its optional capabilities, config
// decoding with errors that name the field, the HTTP client with its SSRF guard, field readers,
// Retry-After parsing and status classification, and Send, the single attempt the delivery engine
// (sinks/delivery) and the vendor stand-ins both use. Everything else — batching, retry,
// dead-lettering, audit records, metrics — is the engine's, so adding a vendor is one package
// with one file plus its test (see sinks/README.md).
package sdk

import (
	"context"
	"net/http"
	"time"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
)

// Class says what to do with events after a vendor answered.
type Class int

const (
	// Delivered: the vendor took the events (or already had them: a dedup answer counts).
	Delivered Class = iota
	// Retry: a temporary failure (429, 5xx, timeout, connection error); send again later.
	Retry
	// Permanent: the vendor will never take these events as they are; dead-letter them.
	Permanent
)

func (c Class) String() string {
	switch c {
	case Delivered:
		return "delivered"
	case Retry:
		return "retry"
	default:
		return "permanent"
	}
}

// Verdict is an adapter's reading of a vendor's answer to one batch.
type Verdict struct {
	Class Class
	// RetryAfter is the vendor's requested wait (Retry-After or an error body's delay); 0 if none.
	RetryAfter time.Duration
	// Reason is a short machine-friendly error ("http_429", "graph_error_190"); empty on success.
	// It is stored in audit rows: never put request data or PII in it.
	Reason string
	// Failed marks single events of the batch the vendor rejected on their own (by index in the
	// batch) with the reason; the rest of the batch has Class. Used by vendors that report errors
	// per row inside a successful response.
	Failed map[int]string
	// Split marks a Permanent answer to a whole batch that one bad event may have caused, the
	// vendor not saying which (Meta and TikTok refuse a whole request for one invalid event).
	// The runner then sends each half of the batch on its own, recursively, so only the bad
	// events are dead-lettered. ClassifyStatus sets it for 400, 413 and 422.
	Split bool
	// ResendRest, with Failed set and Class Retry, says the vendor refused the request only
	// because of the Failed events: the runner sends the others again at once, without them,
	// within the same attempt (Google Ads names bad rows of a refused request).
	ResendRest bool

	// Status is the HTTP status the verdict was read from (0: no response); Send sets it.
	Status int
}

// Adapter turns filtered events into one vendor's HTTP requests and reads its responses.
// Implementations are stateless and safe for concurrent use.
type Adapter interface {
	// MaxBatch is the most events one request may carry (1 for one request per event).
	MaxBatch() int
	// Validate returns an error for an event the vendor would reject whatever happens (e.g. too
	// old); such an event is dead-lettered without being sent, so it cannot fail its batch.
	Validate(ev *schemas.FilteredEvent, now time.Time) error
	// NewRequest builds the request for a batch of valid events.
	NewRequest(ctx context.Context, batch []*schemas.FilteredEvent) (*http.Request, error)
	// Classify reads the vendor's answer (status, headers, body read up to a limit).
	Classify(status int, header http.Header, body []byte, batch []*schemas.FilteredEvent) Verdict
}

// Env looks up an environment variable; tests pass their own.
type Env func(string) (string, bool)

// Constructor builds a destination's adapter from its policy entry, validating its config
// (required keys, secrets present in the environment) with errors naming the field.
type Constructor func(dest *policy.Destination, env Env) (Adapter, error)
