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
	"github.com/tollgate-dev/tollgate/schemas"
)

// A withdrawal must take effect for every event processed after it is acknowledged, including
// events queued before it in the raw topic (CONTRACT §4). Processing in log order alone would let
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
	topic string
	book  *codebook
	log   *zap.Logger
	cl    *kgo.Client

	mu      sync.Mutex
	reached *sync.Cond
	next    map[int32]int64                    // next raw offset to read, per owned partition
	pending map[int32]map[string][]restriction // per partition and user, in offset order
}

func newLookahead(cfg *config.Config, log *zap.Logger, book *codebook) (*lookahead, error) {
	l := &lookahead{topic: cfg.Topic(config.TopicRaw), book: book, log: log.Named("lookahead"),
		next: map[int32]int64{}, pending: map[int32]map[string][]restriction{}}
	l.reached = sync.NewCond(&l.mu)
	cl, err := kafka.NewClient(cfg, log,
		// A direct consumer with no partitions yet: assignments add them.
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), // markers take offsets too; the reader must count past them
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		return nil, err
	}
	l.cl = cl
	return l, nil
}

// run reads ahead until ctx ends.
func (l *lookahead) run(ctx context.Context) {
	for {
		fetches := l.cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return
		}
		fetches.EachError(func(t string, p int32, err error) {
			l.log.Warn("fetch error", zap.String("topic", t), zap.Int32("partition", p), zap.Error(err))
		})
		l.mu.Lock()
		fetches.EachRecord(l.observe)
		l.mu.Unlock()
		l.reached.Broadcast()
	}
}

// observe notes one raw record; l.mu is held.
func (l *lookahead) observe(r *kgo.Record) {
	next, owned := l.next[r.Partition]
	if !owned || r.Offset < next {
		return // a partition given up meanwhile, or a re-read
	}
	l.next[r.Partition] = r.Offset + 1
	if r.Attrs.IsControl() || !schemas.ConsentUpdates.Is(r.Value) {
		return
	}
	u, err := schemas.ConsentUpdates.Decode(r.Value)
	if err != nil {
		return // the processor dead-letters it when it gets there
	}
	res := restriction{offset: r.Offset, erased: u.Erased}
	for purpose, choice := range u.Consent {
		if b, ok := l.book.bit(purpose); ok && !choice {
			res.refused |= b
		}
	}
	if res.refused == 0 && !res.erased {
		return
	}
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
	committed, err := kadm.NewClient(l.cl).FetchOffsetsForTopics(ctx, group, l.topic)
	if err != nil {
		return fmt.Errorf("committed offsets of %s: %w", group, err)
	}
	starts := map[int32]kgo.Offset{}
	l.mu.Lock()
	for _, p := range parts {
		start := kgo.NewOffset().AtStart()
		var from int64
		if o, ok := committed.Lookup(l.topic, p); ok && o.Err == nil && o.At >= 0 {
			start, from = kgo.NewOffset().At(o.At), o.At
		}
		starts[p] = start
		l.next[p] = from
		delete(l.pending, p)
	}
	l.mu.Unlock()
	l.cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{l.topic: starts})
	return nil
}

// remove stops reading partitions this process no longer owns and forgets their restrictions.
func (l *lookahead) remove(parts []int32) {
	l.cl.RemoveConsumePartitions(map[string][]int32{l.topic: parts})
	l.mu.Lock()
	for _, p := range parts {
		delete(l.next, p)
		delete(l.pending, p)
	}
	l.mu.Unlock()
}

// errLookaheadBehind means the lookahead did not reach the end of a partition in time.
var errLookaheadBehind = errors.New("consent lookahead behind the raw topic")

// catchUp waits until the lookahead has read every given partition up to its end as listed now.
func (l *lookahead) catchUp(ctx context.Context, parts []int32, timeout time.Duration) error {
	ends, err := kadm.NewClient(l.cl).ListCommittedOffsets(ctx, l.topic) // read_committed readers end at the LSO
	if err != nil {
		return fmt.Errorf("list end offsets of %s: %w", l.topic, err)
	}
	deadline := time.Now().Add(timeout)
	stop := context.AfterFunc(ctx, l.reached.Broadcast)
	defer stop()
	wake := time.AfterFunc(timeout, l.reached.Broadcast)
	defer wake.Stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range parts {
		end, ok := ends.Lookup(l.topic, p)
		if !ok || end.Err != nil {
			return errors.Join(fmt.Errorf("no end offset of %s[%d]", l.topic, p), end.Err) // Join drops a nil Err and keeps the chain
		}
		for l.next[p] < end.Offset {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%w: partition %d at %d of %d", errLookaheadBehind, p, l.next[p], end.Offset)
			}
			l.reached.Wait()
		}
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

func (l *lookahead) close() { l.cl.Close() }
