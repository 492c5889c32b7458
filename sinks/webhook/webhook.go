// Package webhook delivers events to any HTTP endpoint, signed the Standard Webhooks way
// (https://www.standardwebhooks.com): POST {url} with headers webhook-id, webhook-timestamp and
// webhook-signature "v1,<base64 HMAC-SHA256 of id.timestamp.body>".
//
// Body: {"events": [event, …]} — always an array, max_batch events per request (default 100;
// set max_batch: 1 for one event per request). An event is
//
//	{"event_id": "…", "event": "purchase", "timestamp": "2026-11-23T10:00:00.000Z",
//	 "user_id": …, "anonymous_id": …, "context": {…}, "properties": {…}}
//
// carrying only the fields the policy lets through, with their JSON values as ingested (hashed
// fields as their digests). webhook-id is the receiver's idempotency key: the event id for a
// single event, else "batch_" + the first 32 hex digits of SHA-256 over the events' ids joined
// by "\n" — the same batch always gets the same id, so a resend is recognisable. Receivers
// should still dedupe by event_id, since a retry may regroup events into a different batch.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// Defaults and limits.
const (
	// DefaultTimeout is at the low end of what webhook senders customarily allow (15–30 s).
	DefaultTimeout = 15 * time.Second
	// DefaultMaxBatch is the events per request when the config sets no max_batch.
	DefaultMaxBatch = 100
	// MaxMaxBatch bounds max_batch so one request stays a reasonable size for any receiver.
	MaxMaxBatch = 1000
	// SecretPrefix marks a Standard Webhooks secret: the rest is the base64 key.
	SecretPrefix = "whsec_"
)

// config is the destination's `config` block.
type config struct {
	sdk.HTTPConfig `yaml:",inline"`
	// URL is where events are POSTed. Required.
	URL string `yaml:"url"`
	// SecretEnv names the environment variable holding the signing secret: "whsec_" + base64
	// (the decoded bytes are the HMAC key) or any other string (its bytes are the key). Required.
	SecretEnv string `yaml:"secret_env"`
	// MaxBatch is the most events per request (default 100, at most 1000; 1 = one per request).
	MaxBatch int `yaml:"max_batch"`
	// MaxEventAge is the oldest event (by its own time) the receiver accepts, e.g. "72h"
	// (default 7 days): `tollgate repair` sends nothing older. The policy reads and validates it
	// (policy.Destination.MaxEventAge); the adapter only accepts the key.
	MaxEventAge time.Duration `yaml:"max_event_age"`
}

type adapter struct {
	url      string
	key      []byte
	maxBatch int
	timeout  time.Duration
	now      func() time.Time
	// macs keeps keyed HMAC states for reuse: setting one up hashes the key's two pads, which
	// cost as much as signing a small body.
	macs sync.Pool
}

// New builds the webhook adapter from its policy entry.
func New(dest *policy.Destination, env sdk.Env) (sdk.Adapter, error) {
	var c config
	if err := sdk.DecodeConfig(dest, &c); err != nil {
		return nil, err
	}
	if err := sdk.Required(dest, "url", c.URL); err != nil {
		return nil, err
	}
	// Not sdk.BaseURL: a webhook URL is used exactly as written, query and trailing slash kept.
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, sdk.ConfigError(dest, "url", "%q is not an http:// or https:// URL", c.URL)
	}
	if u.User != nil {
		return nil, sdk.ConfigError(dest, "url", "must not hold credentials (sign with secret_env instead)")
	}
	secret, err := sdk.Secret(dest, env, "secret_env", c.SecretEnv)
	if err != nil {
		return nil, err
	}
	key, err := DecodeSecret(secret)
	if err != nil {
		return nil, sdk.ConfigError(dest, "secret_env", "environment variable %s: %v", c.SecretEnv, err)
	}
	switch {
	case c.MaxBatch == 0:
		c.MaxBatch = DefaultMaxBatch
	case c.MaxBatch < 0 || c.MaxBatch > MaxMaxBatch:
		return nil, sdk.ConfigError(dest, "max_batch", "must be between 1 and %d", MaxMaxBatch)
	}
	return &adapter{url: c.URL, key: key, maxBatch: c.MaxBatch, timeout: c.TimeoutOr(DefaultTimeout), now: time.Now}, nil
}

// DecodeSecret turns a configured secret into the HMAC key: "whsec_<base64>" is decoded, any
// other string is used as its raw bytes.
func DecodeSecret(secret string) ([]byte, error) {
	rest, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return []byte(secret), nil
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || len(key) == 0 {
		return nil, fmt.Errorf("%s secret is not valid base64", SecretPrefix)
	}
	return key, nil
}

// Sign returns the webhook-signature header value for a message.
func Sign(key []byte, id string, timestamp int64, body []byte) string {
	return sign(hmac.New(sha256.New, key), id, timestamp, body)
}

// sign is Sign with a keyed HMAC state m (reset first).
func sign(m hash.Hash, id string, timestamp int64, body []byte) string {
	m.Reset()
	msg := make([]byte, 0, len(id)+24)
	msg = append(msg, id...)
	msg = append(msg, '.')
	msg = strconv.AppendInt(msg, timestamp, 10)
	msg = append(msg, '.')
	m.Write(msg)
	m.Write(body)
	var sum [sha256.Size]byte
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(sum[:0]))
}

// MessageID is the webhook-id of a batch: the event id of a single event, else a digest of the
// ids (see the package comment).
func MessageID(batch []*schemas.FilteredEvent) string {
	if len(batch) == 1 {
		return batch[0].EventID
	}
	h := sha256.New()
	for i, ev := range batch {
		if i > 0 {
			h.Write([]byte{'\n'})
		}
		h.Write([]byte(ev.EventID))
	}
	return "batch_" + hex.EncodeToString(h.Sum(nil))[:32]
}

func (a *adapter) MaxBatch() int { return a.maxBatch }

// Timeout is 15 s unless the config sets one.
func (a *adapter) Timeout() time.Duration { return a.timeout }

// Validate accepts every event: a webhook receiver has no rule tollgate could check.
func (a *adapter) Validate(*schemas.FilteredEvent, time.Time) error { return nil }

// NewRequest builds one signed request for the batch. It is signed at build time, so each
// attempt carries a fresh webhook-timestamp (receivers reject stale ones) and the same id.
func (a *adapter) NewRequest(ctx context.Context, batch []*schemas.FilteredEvent) (*http.Request, error) {
	data := appendBody(make([]byte, 0, 256*len(batch)), batch)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("webhook request: %w", err)
	}
	id, ts := MessageID(batch), a.now().Unix()
	m, _ := a.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, a.key)
	}
	sig := sign(m, id, ts, data)
	a.macs.Put(m)
	// Keys as http.Header.Set would canonicalize them, in one map of the right size.
	req.Header = http.Header{
		"Content-Type":      {"application/json"},
		"User-Agent":        {"tollgate-webhook/1"},
		"Webhook-Id":        {id},
		"Webhook-Timestamp": {strconv.FormatInt(ts, 10)},
		"Webhook-Signature": {sig},
	}
	return req, nil
}

// Classify follows Standard Webhooks practice through sdk.ClassifyStatus: 2xx Delivered; 3xx
// Permanent (redirects are never followed); 410 Gone Permanent (the receiver says the endpoint is
// retired); 408, 429 and 5xx (502, 503, 504 above all) Retry honouring Retry-After; any other 4xx
// Permanent.
func (a *adapter) Classify(status int, header http.Header, _ []byte, _ []*schemas.FilteredEvent) sdk.Verdict {
	return sdk.ClassifyStatus(status, header, a.now())
}
