package delivery

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/processors/consent"
	"github.com/tollgate-dev/tollgate/schemas"
)

// Blocking reasons of the send-time consent re-check, as recorded in deliveries.error.
const (
	BlockedWithdrawn = consent.ReasonWithdrawn
	BlockedErased    = consent.ReasonErased
)

// Withdrawals is a sink's view of the users' consent withdrawals and erasures, followed from the
// compacted consent-state topic (docs/consent.md, "Withdrawal and erasure"). Each record there is a user's full
// merged state; its Kafka timestamp is when the processor wrote it, i.e. when the withdrawal took
// effect. An event decided at or before that moment for a purpose the state refuses must not be
// sent, even if the user grants the purpose again later: the grant does not reach back to events
// decided before the "no".
//
// Memory is bounded by recent withdrawals, not by users: only users whose state refuses some
// purpose or who are erased are remembered, and an entry is forgotten once it is older than the
// horizon (delivery.retry_horizon) — the runner dead-letters, unsent, every event decided longer
// ago than that, so no event an old entry could block is ever sent.
type Withdrawals struct {
	horizon time.Duration // 0: remember everything (dlq replay reads the whole topic)
	now     func() time.Time

	view placed // the follower of the consent-state topic

	mu      sync.Mutex
	users   map[string]*withdrawal
	applied int
}

type withdrawal struct {
	erasedMs int64            // record time of the latest erased state; 0 if not erased
	deniedMs map[string]int64 // purpose -> record time of the latest state refusing it
	latestMs int64
}

// NewWithdrawals returns an empty view remembering withdrawals for horizon (0: forever).
func NewWithdrawals(horizon time.Duration) *Withdrawals {
	return &Withdrawals{horizon: horizon, now: time.Now, users: map[string]*withdrawal{}, view: newPlaced()}
}

// Apply records a user's state written at atMs. States granting everything create no entry.
func (w *Withdrawals) Apply(u *schemas.ConsentUpdate, atMs int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.users[u.UserKey]
	for purpose, granted := range u.Consent {
		if granted {
			continue // a grant never lifts an earlier refusal for events decided before it
		}
		if e == nil {
			e = &withdrawal{deniedMs: map[string]int64{}}
		}
		e.deniedMs[purpose] = max(e.deniedMs[purpose], atMs)
	}
	if u.Erased {
		if e == nil {
			e = &withdrawal{deniedMs: map[string]int64{}}
		}
		e.erasedMs = max(e.erasedMs, atMs)
	}
	if e == nil {
		return
	}
	e.latestMs = max(e.latestMs, atMs)
	w.users[u.UserKey] = e
	if w.applied++; w.applied%1024 == 0 {
		w.forgetLocked()
	}
}

// forgetLocked drops entries whose every withdrawal is older than the horizon.
func (w *Withdrawals) forgetLocked() {
	if w.horizon <= 0 {
		return
	}
	cutoff := w.now().Add(-w.horizon).UnixMilli()
	for k, e := range w.users {
		if e.latestMs < cutoff {
			delete(w.users, k)
		}
	}
}

// Len is the number of users remembered.
func (w *Withdrawals) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.users)
}

// Check returns BlockedErased, BlockedWithdrawn or "" for an event about to be sent. purposes are
// the event's purpose at decision time and the destination's purpose in the policy now; a
// refusal of either blocks. The rule is the engine's (consent.Restricts): an erased user is
// blocked whatever the purpose and the time (erasure is permanent), the necessary purpose cannot
// be withdrawn, and a refusal blocks events decided at or before it.
func (w *Withdrawals) Check(ev *schemas.FilteredEvent, purposes ...string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.users[ev.UserKey]
	if e == nil {
		return ""
	}
	refusedBefore := func(p string) bool {
		t, ok := e.deniedMs[p]
		return ok && ev.DecidedMs <= t
	}
	for _, p := range append([]string{ev.Purpose}, purposes...) {
		if why := consent.Restricts(e.erasedMs != 0, refusedBefore, p); why != "" {
			return why
		}
	}
	return ""
}

// Follow reads the consent-state topic until ctx ends: first from the records written within
// the horizon (from the start when there is none), then every new record as it is written.
func (w *Withdrawals) Follow(ctx context.Context, cfg *config.Config, log *zap.Logger) error {
	topic := cfg.Topic(config.TopicState)
	f, err := kafka.NewFollower(cfg, log, topic, func(r *kgo.Record) {
		u, err := schemas.ConsentUpdates.Decode(r.Value)
		if err != nil {
			log.Warn("skipping undecodable consent-state record", zap.Int32("partition", r.Partition), zap.Int64("offset", r.Offset), zap.Error(err))
			return
		}
		w.Apply(&u, r.Timestamp.UnixMilli())
	}, kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		return err
	}
	defer f.Close()
	w.view.place(f)
	if f.Start(ctx, func(ctx context.Context, cl *kgo.Client) (map[int32]int64, error) {
		return w.startOffsets(ctx, cl, topic)
	}) != nil {
		return nil // stopped before it started
	}
	f.Run(ctx)
	return nil
}

// startOffsets finds, per partition, the first record written within the horizon.
func (w *Withdrawals) startOffsets(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, error) {
	adm := kadm.NewClient(cl)
	var listed kadm.ListedOffsets
	var err error
	if w.horizon > 0 {
		listed, err = adm.ListOffsetsAfterMilli(ctx, w.now().Add(-w.horizon).UnixMilli(), topic)
	} else {
		listed, err = adm.ListStartOffsets(ctx, topic)
	}
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("consent state: list offsets of %s: %w", topic, err)
	}
	out := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

// Pause stops following the consent-state topic until Resume (kafka.Follower.Pause); Check
// answers as of the pause, and Sync waits: Resume before it.
func (w *Withdrawals) Pause() { w.view.pause() }

// Resume follows again after Pause.
func (w *Withdrawals) Resume() { w.view.resume() }

// Sync returns once every consent-state record committed before the call is applied, so a
// withdrawal the processor wrote before a request starts is honoured by it. A catch-up that
// started less than reuse ago counts (kafka.Follower.Sync). It waits through broker errors until
// ctx ends.
func (w *Withdrawals) Sync(ctx context.Context, reuse time.Duration) error {
	return w.view.sync(ctx, reuse)
}
