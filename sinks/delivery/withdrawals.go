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
	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
)

// Blocking reasons of the send-time consent re-check, as recorded in deliveries.error.
const (
	BlockedWithdrawn = "withdrawn"
	BlockedErased    = "erased"
)

// Withdrawals is a sink's view of the users' consent withdrawals and erasures, followed from the
// compacted consent-state topic (CONTRACT §5, last paragraph). Each record there is a user's full
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

	mu      sync.Mutex
	users   map[string]*withdrawal
	pos     map[int32]int64 // next offset to read per partition of the consent-state topic
	changed chan struct{}   // closed and replaced whenever pos advances
	ready   chan struct{}   // closed once pos is initialised
	synced  time.Time       // when the last Sync listed the end offsets it then reached
	applied int
}

type withdrawal struct {
	erasedMs int64            // record time of the latest erased state; 0 if not erased
	deniedMs map[string]int64 // purpose -> record time of the latest state refusing it
	latestMs int64
}

// NewWithdrawals returns an empty view remembering withdrawals for horizon (0: forever).
func NewWithdrawals(horizon time.Duration) *Withdrawals {
	return &Withdrawals{horizon: horizon, now: time.Now, users: map[string]*withdrawal{},
		pos: map[int32]int64{}, changed: make(chan struct{}), ready: make(chan struct{})}
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
// refusal of either blocks. An erased user is blocked whatever the purpose and the time (erasure
// is permanent); a refusal blocks events decided at or before it. The necessary purpose cannot be
// withdrawn (CONTRACT §5 rule 2 comes before rule 3).
func (w *Withdrawals) Check(ev *schemas.FilteredEvent, purposes ...string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.users[ev.UserKey]
	if e == nil {
		return ""
	}
	if e.erasedMs != 0 {
		return BlockedErased
	}
	for _, p := range append([]string{ev.Purpose}, purposes...) {
		if p == policy.Necessary || p == "" {
			continue
		}
		if t, ok := e.deniedMs[p]; ok && ev.DecidedMs <= t {
			return BlockedWithdrawn
		}
	}
	return ""
}

// Follow reads the consent-state topic until ctx ends: first from the records written within
// the horizon (from the start when there is none), then every new record as it is written.
func (w *Withdrawals) Follow(ctx context.Context, cfg *config.Config, log *zap.Logger) error {
	topic := cfg.Topic(config.TopicState)
	var start map[int32]int64
	for tries := 1; ; tries++ {
		var err error
		if start, err = w.startOffsets(ctx, cfg, log, topic); err == nil {
			break
		}
		// A topic created a moment ago may not be known to every broker yet; a broker may be
		// restarting. Sends wait (Sync) until this succeeds.
		if tries%10 == 0 {
			log.Warn("consent state: cannot list start offsets; retrying", zap.Error(err))
		}
		if sleep(ctx, 500*time.Millisecond) != nil {
			return nil // stopped before it started
		}
	}
	parts := map[int32]kgo.Offset{}
	w.mu.Lock()
	for p, o := range start {
		w.pos[p] = o
		parts[p] = kgo.NewOffset().At(o)
	}
	close(w.ready)
	w.mu.Unlock()
	cl, err := kafka.NewClient(cfg, log,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), // transaction markers advance pos, so Sync can reach the end
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			log.Warn("consent-state fetch error", zap.String("topic", t), zap.Int32("partition", p), zap.Error(err))
		})
		fetches.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				u, err := schemas.ConsentUpdates.Decode(r.Value)
				if err != nil {
					log.Warn("skipping undecodable consent-state record", zap.Int32("partition", r.Partition), zap.Int64("offset", r.Offset), zap.Error(err))
				} else {
					w.Apply(&u, r.Timestamp.UnixMilli())
				}
			}
			w.advance(r.Partition, r.Offset+1)
		})
	}
}

func (w *Withdrawals) advance(p int32, next int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if next > w.pos[p] {
		w.pos[p] = next
		close(w.changed)
		w.changed = make(chan struct{})
	}
}

// startOffsets finds, per partition, the first record written within the horizon.
func (w *Withdrawals) startOffsets(ctx context.Context, cfg *config.Config, log *zap.Logger, topic string) (map[int32]int64, error) {
	cl, err := kafka.NewClient(cfg, log)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var listed kadm.ListedOffsets
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

// Sync returns once every consent-state record committed before the call is applied, so a
// withdrawal the processor wrote before a request starts is honoured by it. A Sync that listed
// the end offsets less than reuse ago counts (reuse bounds the broker round trips when requests
// follow each other quickly). It waits through broker errors until ctx ends.
func (w *Withdrawals) Sync(ctx context.Context, cl *kgo.Client, topic string, reuse time.Duration, log *zap.Logger) error {
	select {
	case <-w.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	w.mu.Lock()
	fresh := !w.synced.IsZero() && w.now().Sub(w.synced) < reuse
	w.mu.Unlock()
	if fresh {
		return nil
	}
	started := w.now()
	var ends map[int32]int64
	for {
		var err error
		if ends, err = kafka.EndOffsets(ctx, cl, topic); err == nil {
			break
		}
		log.Warn("consent state: cannot list end offsets; holding sends", zap.Error(err))
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
	for {
		w.mu.Lock()
		done, ch := true, w.changed
		for p, end := range ends {
			if pos, ok := w.pos[p]; ok && pos < end {
				done = false
			}
		}
		if done {
			w.synced = started
		}
		w.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
