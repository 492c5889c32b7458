package schemas

// appendEvent appends an Event's Avro binary encoding (after the single-object header), in
// event.avsc's order. Ingest encodes one for every accepted event; hamba/avro's reflective
// encoder (through the wire struct that turns Consent into a union) was its largest encoding
// cost. TestAppendEventMatchesSchema holds it to the schema, byte for byte.
func appendEvent(b []byte, e *Event) []byte {
	b = appendString(b, e.EventID)
	b = appendString(b, e.Event)
	b = appendLong(b, e.TimestampMs)
	b = appendLong(b, e.ReceivedMs)
	b = appendString(b, e.UserID)
	b = appendString(b, e.AnonymousID)
	if e.Consent == nil { // the union ["null", map]: nil is "no choice made"
		b = append(b, 0)
	} else {
		b = appendBoolMap(appendLong(b, 1), e.Consent)
	}
	b = appendString(b, e.Jurisdiction)
	b = appendBool(b, e.GPC)
	b = appendStringMap(b, e.Context)
	b = appendStringMap(b, e.Properties)
	s := e.Signals
	if s == nil {
		return append(b, 0)
	}
	b = appendLong(b, 1)
	b = appendString(b, s.TCF)
	b = appendString(b, s.GPP)
	b = appendInts(b, s.GPPSID)
	b = appendStringMap(b, s.GCM)
	b = appendStrings(b, s.CMPAllowed)
	b = appendStrings(b, s.CMPDenied)
	b = appendBool(b, s.CMPHasDenied)
	return appendBool(b, s.CMPAny)
}

// appendStringMap appends a map of strings as hamba/avro writes maps: one block with a negative
// count and its size in bytes, then the empty block that ends the map.
func appendStringMap(b []byte, m map[string]string) []byte {
	if len(m) > 0 {
		size := 0
		for k, v := range m {
			size += stringSize(k) + stringSize(v)
		}
		b = appendLong(appendLong(b, -int64(len(m))), int64(size))
		for k, v := range m {
			b = appendString(appendString(b, k), v)
		}
	}
	return append(b, 0)
}

// appendInts appends an array of ints (Avro int: zig-zag varint, as long) in one block.
func appendInts(b []byte, v []int) []byte {
	if len(v) > 0 {
		size := 0
		for _, x := range v {
			size += longSize(int64(x))
		}
		b = appendLong(appendLong(b, -int64(len(v))), int64(size))
		for _, x := range v {
			b = appendLong(b, int64(x))
		}
	}
	return append(b, 0)
}

// eventSize estimates the encoded size, so the buffer is allocated once.
func eventSize(e *Event) int {
	n := 64 + len(e.EventID) + len(e.Event) + len(e.UserID) + len(e.AnonymousID) + len(e.Jurisdiction)
	for k := range e.Consent {
		n += len(k) + 6
	}
	for k, v := range e.Context {
		n += len(k) + len(v) + 6
	}
	for k, v := range e.Properties {
		n += len(k) + len(v) + 6
	}
	if s := e.Signals; s != nil {
		n += 32 + len(s.TCF) + len(s.GPP) + 5*len(s.GPPSID)
		for k, v := range s.GCM {
			n += len(k) + len(v) + 6
		}
		for _, x := range s.CMPAllowed {
			n += len(x) + 3
		}
		for _, x := range s.CMPDenied {
			n += len(x) + 3
		}
	}
	return n
}
