package schemas

import (
	"errors"
	"fmt"
)

// Hand-written Avro decoding of the records every sink reads once per event and destination.
// hamba/avro's reflective decoder was about a fifth of a sink's CPU per event. readFilteredEvent
// follows filtered_event.avsc exactly as appendFilteredEvent does; TestReadFilteredEventMatches
// holds it to hamba/avro's answer and FuzzReadFilteredEvent to hamba/avro on hostile bytes. Only
// the current schema version is read by hand: records of a previous one go through hamba/avro
// with schema resolution (Codec.decodeInto).

var errShort = errors.New("record ends early")

// reader walks Avro binary data; the first error sticks and every later read returns zero
// values, so a decoder checks err once at its end. Strings are cut from one copy of the whole
// body (src), so reading a record costs one string allocation, not one per field.
type reader struct {
	b   []byte
	src string // string(b) as it was when reading began: b is always its tail
	err error
}

func newReader(b []byte) reader { return reader{b: b, src: string(b)} }

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

// long is Avro's long: a varint of at most 10 bytes, then zig-zag.
func (r *reader) long() int64 { return r.varint(10) }

// varint reads a zig-zag varint of at most max bytes (10 for a long, 5 for an int).
func (r *reader) varint(max int) int64 {
	if len(r.b) > 0 && r.b[0] < 0x80 { // one byte: most lengths, counts and small numbers
		c := r.b[0]
		r.b = r.b[1:]
		return int64(c>>1) ^ -int64(c&1)
	}
	var u uint64
	for i := 0; i < max; i++ {
		if i >= len(r.b) {
			r.fail(errShort)
			return 0
		}
		c := r.b[i]
		u |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			r.b = r.b[i+1:]
			return int64(u>>1) ^ -int64(u&1)
		}
	}
	r.fail(fmt.Errorf("varint longer than %d bytes", max))
	return 0
}

func (r *reader) str() string {
	n := r.long()
	if n < 0 || n > int64(len(r.b)) {
		r.fail(fmt.Errorf("string of %d bytes with %d left", n, len(r.b)))
		return ""
	}
	at := len(r.src) - len(r.b)
	r.b = r.b[n:]
	return r.src[at : at+int(n)]
}

func (r *reader) boolean() bool {
	if len(r.b) == 0 {
		r.fail(errShort)
		return false
	}
	c := r.b[0]
	r.b = r.b[1:]
	if c > 1 {
		r.fail(fmt.Errorf("boolean byte %d", c))
	}
	return c == 1
}

// blocks reads the blocks of an Avro map (or array), calling entry for each item; an item takes
// at least one byte, which bounds a block's count by the bytes left before anything is allocated.
func (r *reader) blocks(entry func()) { r.sizedBlocks(nil, entry) }

// sizedBlocks is blocks that first tells grow, when not nil, each block's count: a decoder
// appending the items to a slice grows it once per block.
func (r *reader) sizedBlocks(grow func(n int), entry func()) {
	for r.err == nil {
		n := r.long()
		if n == 0 {
			return
		}
		if n < 0 {
			n = -n
			r.long() // the block's size in bytes: not needed when reading every item
		}
		if n < 0 || n > int64(len(r.b)) { // n < 0: a count of -2⁶³, whose negation overflows
			r.fail(fmt.Errorf("block of %d items with %d bytes left", n, len(r.b)))
			return
		}
		if grow != nil {
			grow(int(n))
		}
		for ; n > 0 && r.err == nil; n-- {
			entry()
		}
	}
}

func (r *reader) boolMap() map[string]bool {
	m := map[string]bool{}
	r.blocks(func() {
		k := r.str()
		m[k] = r.boolean()
	})
	return m
}

func (r *reader) stringMap() map[string]string {
	m := map[string]string{}
	r.blocks(func() {
		k := r.str()
		m[k] = r.str()
	})
	return m
}

// readFilteredEvent reads a FilteredEvent's body (after the single-object header).
func readFilteredEvent(b []byte, e *FilteredEvent) error {
	r := newReader(b)
	e.EventID = r.str()
	e.DecisionID = r.str()
	e.Destination = r.str()
	e.Event = r.str()
	e.TimestampMs = r.long()
	e.DecidedMs = r.long()
	e.UserKey = r.str()
	e.Purpose = r.str()
	e.Jurisdiction = r.str()
	e.GPC = r.boolean()
	e.Consent = r.boolMap()
	e.Fields = r.stringMap()
	e.PolicyVersion = r.str()
	e.RunID = r.str()
	e.VendorConsent = r.boolMap()
	return r.err
}

// present reads the branch index of a ["null", T] union: false for null.
func (r *reader) present() bool {
	switch r.long() {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail(errors.New("union branch out of range"))
	return false
}

func (r *reader) ints() []int {
	out := []int{}
	r.blocks(func() {
		out = append(out, r.int32())
	})
	return out
}

func (r *reader) strings() []string {
	out := []string{}
	r.blocks(func() { out = append(out, r.str()) })
	return out
}

// readEvent reads an Event's body (after the single-object header); the processor decodes every
// raw event, and hamba/avro's reflective decoder was a tenth of its CPU per event.
func readEvent(b []byte, e *Event) error { return readEventBody(b, e, true) }

// DecodeEventHead decodes an event without its context and properties (left nil): what the
// processor's lookahead reads of every raw event under the pre-consent hold, where the two maps
// were most of the decoding. A record of an older version of the schema is decoded whole.
func DecodeEventHead(data []byte) (Event, error) {
	return Events.decodeWith(data, func(b []byte, e *Event) error { return readEventBody(b, e, false) })
}

// readEventBody reads an Event's body, its context and properties only when maps is set (else
// skipped: their strings are read in place, nothing allocated).
func readEventBody(b []byte, e *Event, maps bool) error {
	r := newReader(b)
	e.EventID = r.str()
	e.Event = r.str()
	e.TimestampMs = r.long()
	e.ReceivedMs = r.long()
	e.UserID = r.str()
	e.AnonymousID = r.str()
	if r.present() {
		e.Consent = r.boolMap()
	}
	e.Jurisdiction = r.str()
	e.GPC = r.boolean()
	if maps {
		e.Context = r.stringMap()
		e.Properties = r.stringMap()
	} else {
		skip := func() { r.str(); r.str() }
		r.blocks(skip)
		r.blocks(skip)
	}
	if r.present() {
		s := &ConsentSignals{}
		s.TCF = r.str()
		s.GPP = r.str()
		s.GPPSID = r.ints()
		s.GCM = r.stringMap()
		s.CMPAllowed = r.strings()
		s.CMPDenied = r.strings()
		s.CMPHasDenied = r.boolean()
		s.CMPAny = r.boolean()
		e.Signals = s
	}
	return r.err
}
