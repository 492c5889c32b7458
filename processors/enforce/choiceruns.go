package enforce

import "hash/maphash"

// runTable is one partition's runs of the lookahead's queued choices (choiceahead.go), kept
// without a pointer the garbage collector would scan: under a backlog the lookahead keeps a run
// per user ahead of the processor (hundreds of thousands), and with strings, slices and maps of
// slices the collector walked every one of them in every cycle of the processor's heap. Users
// are keys of two seeded 64-bit hashes, runs are slots of one slice chained per user, and their
// events' id hashes are nodes of another; freed slots and nodes are reused.
type runTable struct {
	users   map[userKey]int32 // the user's newest run
	slots   []runSlot
	nodes   []idNode
	free    int32     // first free slot (chained through prev), none: -1
	freeIDs int32     // first free node (chained through next), none: -1
	queue   []runMark // in log order: when each run may be forgotten
}

// userKey is a user key as two independent seeded hashes: two users share one with odds of
// about n²/2¹²⁹ (n users ahead), and nobody outside the process knows the seeds to aim at it.
type userKey [2]uint64

// runSlot is one run of a user's events that chose nothing, in log order.
type runSlot struct {
	first, last int64 // offsets of its first and last event
	user        userKey
	prev        int32 // the user's run before this one (none: -1); in a free slot, the next free one
	ids         int32 // first node of its events' id hashes (newest first), none: -1
	count       int32 // ids kept: a run keeps at most one past the cap
	ended       bool
	chosen      bool         // ended by a queued choice: choice holds it
	choice      queuedChoice // what ended it, when chosen
}

// idNode is one event id's hash in a run's list.
type idNode struct {
	hash uint64
	next int32
}

// runMark says that the run in slot may be forgotten once the processor passed offset (the run's
// last event when marked; a run that grew since is marked again). A run has one mark at a time,
// so its slot is not reused while the mark waits.
type runMark struct {
	offset int64
	slot   int32
}

func newRunTable() *runTable {
	return &runTable{users: map[userKey]int32{}, free: -1, freeIDs: -1}
}

func keyOf(seeds *[2]maphash.Seed, user string) userKey {
	return userKey{maphash.String(seeds[0], user), maphash.String(seeds[1], user)}
}

// newest is the user's latest run, or nil.
func (t *runTable) newest(u userKey) *runSlot {
	if s, ok := t.users[u]; ok {
		return &t.slots[s]
	}
	return nil
}

// start begins a new run for the user at offset, with one event id hash.
func (t *runTable) start(u userKey, offset int64, id uint64) {
	prev, ok := t.users[u]
	if !ok {
		prev = -1
	}
	s := take(&t.slots, &t.free, func(r *runSlot) int32 { return r.prev })
	t.slots[s] = runSlot{first: offset, last: offset, user: u, prev: prev, ids: -1}
	t.addID(&t.slots[s], id)
	t.users[u] = s
	t.queue = append(t.queue, runMark{offset: offset, slot: s})
}

// addID adds an event id hash to the run.
func (t *runTable) addID(run *runSlot, id uint64) {
	n := take(&t.nodes, &t.freeIDs, func(n *idNode) int32 { return n.next })
	t.nodes[n] = idNode{hash: id, next: run.ids}
	run.ids = n
	run.count++
}

// take is a slot of items for a new element: the first of its free list (free, chained through
// next), or one appended.
func take[T any](items *[]T, free *int32, next func(*T) int32) int32 {
	if i := *free; i >= 0 {
		*free = next(&(*items)[i])
		return i
	}
	*items = append(*items, *new(T))
	return int32(len(*items) - 1)
}

// hasID reports whether the run has an event of that id hash.
func (t *runTable) hasID(run *runSlot, id uint64) bool {
	for n := run.ids; n >= 0; n = t.nodes[n].next {
		if t.nodes[n].hash == id {
			return true
		}
	}
	return false
}

// find is the user's run that holds offset, or nil.
func (t *runTable) find(u userKey, offset int64) *runSlot {
	s, ok := t.users[u]
	for ok && s >= 0 {
		run := &t.slots[s]
		if run.first <= offset && offset <= run.last {
			return run
		}
		s = run.prev
	}
	return nil
}

// passed forgets the runs the processor has passed (their last event at or before offset) and
// reports how many. The queue is in log order of the marks, not of the runs' last events: a
// mark behind one not passed yet waits for it, which only delays forgetting.
func (t *runTable) passed(offset int64) (forgotten int) {
	q := t.queue
	i := 0
	for ; i < len(q) && q[i].offset <= offset; i++ {
		s := q[i].slot
		if last := t.slots[s].last; last > offset {
			q = append(q, runMark{offset: last, slot: s})
			continue
		}
		t.forget(s)
		forgotten++
	}
	t.queue = q[i:]
	return forgotten
}

// forget unlinks the run in slot from its user's runs and frees it and its ids.
func (t *runTable) forget(s int32) {
	run := &t.slots[s]
	if head := t.users[run.user]; head == s {
		if run.prev < 0 {
			delete(t.users, run.user)
		} else {
			t.users[run.user] = run.prev
		}
	} else {
		for later := &t.slots[head]; ; later = &t.slots[later.prev] {
			if later.prev == s {
				later.prev = run.prev
				break
			}
		}
	}
	for n := run.ids; n >= 0; {
		next := t.nodes[n].next
		t.nodes[n].next = t.freeIDs
		t.freeIDs = n
		n = next
	}
	*run = runSlot{prev: t.free}
	t.free = s
}
