package enforce

import (
	"context"
	"errors"
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

// A withdrawal must take effect for every event processed after it is acknowledged, including
// events queued before it in the raw topic (docs/consent.md). Processing in log order alone would let
// those earlier events run on the old consent. So a second reader (the lookahead) runs ahead of
// the processor over the raw partitions it owns and collects the consent updates that restrict
// something: a purpose set to false, an erasure. Before each batch, the processor waits until the
// lookahead has read up to the partitions' current end (listed at that moment): every withdrawal
// acknowledged by then is known, and is applied to the batch's events that precede it in the log.
// Grants are never applied ahead; they take effect in log order. A restriction is forgotten once
// the processor has passed its offset, so memory is bounded by the withdrawals in flight.

// restriction is one restricting consent update seen ahead of the processor.
type restriction struct {
	offset  int64  // raw offset of the update: it applies early to events before it
	refused uint64 // codebook bits of the purposes set to false
	erased  bool
}

type lookahead struct {
	topic  string
	follow *kafka.Follower
	book   *codebook

	mu      sync.Mutex
	pending map[int32]map[string][]restriction // per partition and user, in offset order
	choices *choicesAhead                      // under the policy's hold: choices queued (choiceahead.go)
}

func newLookahead(cfg *config.Config, log *zap.Logger, book *codebook) (*lookahead, error) {
	l := &lookahead{topic: cfg.Topic(config.TopicRaw), book: book, pending: map[int32]map[string][]restriction{}}
	if cfg.Processor.QueuedChoices {
		l.choices = newChoicesAhead(cfg.Policy)
	}
	f, err := kafka.NewFollower(cfg, log.Named("lookahead"), l.topic, l.observe, kafka.InSteps()...)
	if err != nil {
		return nil, err
	}
	l.follow = f
	return l, nil
}

// run reads ahead until ctx ends.
func (l *lookahead) run(ctx context.Context) { l.follow.Run(ctx) }

// observe notes one raw record of an owned partition, in log order.
func (l *lookahead) observe(r *kgo.Record) {
	if !schemas.ConsentUpdates.Is(r.Value) {
		if l.choices != nil && schemas.Events.Is(r.Value) {
			l.observeEvent(r)
		}
		return
	}
	u, err := schemas.ConsentUpdates.Decode(r.Value)
	if err != nil {
		return // the processor dead-letters it when it gets there
	}
	l.mu.Lock()
	l.choices.update(r.Partition, u.UserKey)
	l.mu.Unlock()
	res := restriction{offset: r.Offset, erased: u.Erased}
	for purpose := range consent.Refused(u.Consent) {
		if b, ok := l.book.bit(purpose); ok {
			res.refused |= b
		}
	}
	if res.refused == 0 && !res.erased {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	users := l.pending[r.Partition]
	if users == nil {
		users = map[string][]restriction{}
		l.pending[r.Partition] = users
	}
	users[u.UserKey] = append(users[u.UserKey], res)
}

// add starts reading newly assigned partitions from the group's committed offsets (where the
// processor resumes), or from the start of a partition that has none.
func (l *lookahead) add(ctx context.Context, group string, parts []int32) error {
	raw := l.topic
	committed, err := kadm.NewClient(l.follow.Client()).FetchOffsetsForTopics(ctx, group, raw)
	if err != nil {
		return fmt.Errorf("committed offsets of %s: %w", group, err)
	}
	starts := map[int32]int64{}
	l.mu.Lock()
	for _, p := range parts {
		starts[p] = -1 // the partition's start
		if o, ok := committed.Lookup(raw, p); ok && o.Err == nil && o.At >= 0 {
			starts[p] = o.At
		}
		delete(l.pending, p)
		l.choices.drop(p)
	}
	l.mu.Unlock()
	return l.follow.Follow(ctx, starts)
}

// remove stops reading partitions this process no longer owns and forgets their restrictions.
func (l *lookahead) remove(parts []int32) {
	l.follow.Forget(parts)
	l.mu.Lock()
	for _, p := range parts {
		delete(l.pending, p)
		l.choices.drop(p)
	}
	l.mu.Unlock()
}

// errLookaheadBehind means the lookahead did not reach the end of a partition in time.
var errLookaheadBehind = errors.New("consent lookahead behind the raw topic")

// catchUp waits until the lookahead has read every given partition up to its end as listed now.
func (l *lookahead) catchUp(ctx context.Context, parts []int32, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := l.follow.CatchUp(ctx, parts); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%w: %w", errLookaheadBehind, err)
		}
		return err
	}
	return nil
}

// ahead returns the restrictions of a user recorded after the given offset: withdrawals and
// erasures later in the log that must already hold for the event at that offset.
func (l *lookahead) ahead(partition int32, user string, offset int64) (refused uint64, erased bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.pending[partition][user] {
		if r.offset > offset {
			refused |= r.refused
			erased = erased || r.erased
		}
	}
	return refused, erased
}

// passed forgets the restrictions at or before offset: the processor's state holds them now.
func (l *lookahead) passed(partition int32, offset int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.choices.passed(partition, offset)
	users := l.pending[partition]
	for user, rs := range users {
		keep := rs[:0]
		for _, r := range rs {
			if r.offset > offset {
				keep = append(keep, r)
			}
		}
		if len(keep) == 0 {
			delete(users, user)
		} else {
			users[user] = keep
		}
	}
}

func (l *lookahead) close() { l.follow.Close() }
