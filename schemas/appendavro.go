package schemas

import (
	"encoding/binary"
	"math"
	"slices"
)

// appendFilteredEvent appends a FilteredEvent's Avro binary encoding (after the single-object
// header), field by field in schema order. It is written by hand because the processor encodes
// one for every event and destination it forwards, and hamba/avro's reflective encoder was the
// largest single cost in the processor's profile. The hand encoder must follow
// filtered_event.avsc: TestAppendFilteredEventMatchesSchema decodes what it writes with hamba/avro
// and fails on any change of the schema it does not follow.
func appendFilteredEvent(b []byte, e *FilteredEvent) []byte {
	b = appendString(b, e.EventID)
	b = appendString(b, e.DecisionID)
	b = appendString(b, e.Destination)
	b = appendString(b, e.Event)
	b = appendLong(b, e.TimestampMs)
	b = appendLong(b, e.DecidedMs)
	b = appendString(b, e.UserKey)
	b = appendString(b, e.Purpose)
	b = appendString(b, e.Jurisdiction)
	b = appendBool(b, e.GPC)
	b = appendBoolMap(b, e.Consent)
	b = appendStringMap(b, e.Fields)
	b = appendString(b, e.PolicyVersion)
	b = appendString(b, e.RunID)
	return appendBoolMap(b, e.VendorConsent)
}

// appendBoolMap appends a map of booleans as hamba/avro writes maps: one block with a negative
// count and its size in bytes, then the empty block that ends the map.
func appendBoolMap(b []byte, m map[string]bool) []byte {
	if len(m) > 0 {
		size := 0
		for k := range m {
			size += stringSize(k) + 1
		}
		b = appendLong(appendLong(b, -int64(len(m))), int64(size))
		for k, v := range m {
			b = appendBool(appendString(b, k), v)
		}
	}
	return append(b, 0)
}

// appendDecision appends a Decision's Avro binary encoding (after the header), in
// decision.avsc's order: the processor writes one for every event and destination, and after
// FilteredEvent it was the largest encoding cost in the processor's profile.
// TestAppendDecisionMatchesSchema holds it to the schema.
func appendDecision(b []byte, d *Decision) []byte {
	b = appendString(b, d.DecisionID)
	b = appendString(b, d.EventID)
	b = appendString(b, d.UserKey)
	b = appendString(b, d.Destination)
	b = appendString(b, d.EventName)
	b = appendLong(b, d.EventTimeMs)
	b = appendLong(b, d.DecidedMs)
	b = appendString(b, d.Outcome)
	b = appendString(b, d.Reason)
	b = appendString(b, d.Purpose)
	b = appendString(b, d.Jurisdiction)
	b = appendBool(b, d.GPC)
	b = appendStrings(b, d.FieldsSent)
	b = appendStrings(b, d.FieldsStripped)
	b = appendString(b, d.PolicyVersion)
	b = appendString(b, d.RunID)
	b = appendString(b, d.ConsentSource)
	return appendString(b, d.ConsentProof)
}

// appendStrings appends an array of strings as hamba/avro writes it: one block with a negative
// count and its size in bytes, then the empty block that ends the array.
func appendStrings(b []byte, ss []string) []byte {
	if len(ss) > 0 {
		size := 0
		for _, s := range ss {
			size += stringSize(s)
		}
		b = appendLong(appendLong(b, -int64(len(ss))), int64(size))
		for _, s := range ss {
			b = appendString(b, s)
		}
	}
	return append(b, 0)
}

func decisionSize(d *Decision) int {
	n := 96 + len(d.DecisionID) + len(d.EventID) + len(d.UserKey) + len(d.Destination) + len(d.EventName) + len(d.Outcome) +
		len(d.Reason) + len(d.Purpose) + len(d.Jurisdiction) + len(d.PolicyVersion) + len(d.RunID) +
		len(d.ConsentSource) + len(d.ConsentProof) + 6
	for _, s := range d.FieldsSent {
		n += len(s) + 3
	}
	for _, s := range d.FieldsStripped {
		n += len(s) + 3
	}
	return n
}

// filteredEventSize estimates the encoded size, so the buffer is allocated once.
func filteredEventSize(e *FilteredEvent) int {
	n := 80 + len(e.EventID) + len(e.DecisionID) + len(e.Destination) + len(e.Event) + len(e.UserKey) +
		len(e.Purpose) + len(e.Jurisdiction) + len(e.PolicyVersion) + len(e.RunID)
	for k := range e.Consent {
		n += len(k) + 6
	}
	for k := range e.VendorConsent {
		n += len(k) + 6
	}
	for k, v := range e.Fields {
		n += len(k) + len(v) + 6
	}
	return n
}

// appendLong is Avro's long: zig-zag, then a varint.
func appendLong(b []byte, v int64) []byte { return binary.AppendUvarint(b, uint64(v<<1)^uint64(v>>63)) }

// stringSize is the encoded length of s.
func stringSize(s string) int { return longSize(int64(len(s))) + len(s) }

func longSize(v int64) int {
	n, u := 1, uint64(v<<1)^uint64(v>>63)
	for ; u >= 0x80; u >>= 7 {
		n++
	}
	return n
}

func appendString(b []byte, s string) []byte {
	if len(s) > math.MaxInt32 {
		panic("schemas: string too long for Avro")
	}
	return append(appendLong(b, int64(len(s))), s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// avroBlockLength is hamba/avro's default block length for arrays and maps.
const avroBlockLength = 100

// appendArray appends n items as hamba/avro writes an array: blocks of at most avroBlockLength
// items, each headed by its negated count and its size in bytes, then the empty block that ends
// the array. As hamba/avro does, a block's items are written first and its header put in front
// of them, so no item's length is worked out twice (with the exact size reserved, the insertion
// only moves the block's bytes along).
func appendArray(b []byte, n int, item func(b []byte, i int) []byte) []byte {
	var head [2 * binary.MaxVarintLen64]byte
	for start := 0; start < n; start += avroBlockLength {
		end := min(start+avroBlockLength, n)
		at := len(b)
		for i := start; i < end; i++ {
			b = item(b, i)
		}
		b = slices.Insert(b, at, appendLong(appendLong(head[:0], -int64(end-start)), int64(len(b)-at))...)
	}
	return append(b, 0)
}

// arrayLen is the exact encoded length of appendArray's output, itemLen the length of an item.
func arrayLen(n int, itemLen func(i int) int) int {
	total := 1
	for start := 0; start < n; start += avroBlockLength {
		end := min(start+avroBlockLength, n)
		size := 0
		for i := start; i < end; i++ {
			size += itemLen(i)
		}
		total += longSize(-int64(end-start)) + longSize(int64(size)) + size
	}
	return total
}
