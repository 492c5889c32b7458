package schemas

// Hand-written Avro of DecisionSet, in decision_set.avsc's order, like appendavro.go and
// readavro.go: the processor encodes one for every event it decides and the audit writer
// decodes every one (appendSetDecisions, straight into rows). TestDecisionSetMatchesHamba and
// FuzzReadDecisionSet hold them to hamba/avro and to each other.

func appendDecisionSet(b []byte, s *DecisionSet) []byte {
	b = appendString(b, s.EventID)
	b = appendString(b, s.UserKey)
	b = appendString(b, s.EventName)
	b = appendLong(b, s.EventTimeMs)
	b = appendLong(b, s.DecidedMs)
	b = appendString(b, s.Jurisdiction)
	b = appendBool(b, s.GPC)
	b = appendString(b, s.PolicyVersion)
	b = appendString(b, s.RunID)
	b = appendString(b, s.ConsentProof)
	return appendArray(b, len(s.Destinations), func(b []byte, i int) []byte { return appendDestinationDecision(b, &s.Destinations[i]) })
}

func appendDestinationDecision(b []byte, e *DestinationDecision) []byte {
	b = appendString(b, e.DecisionID)
	b = appendString(b, e.Destination)
	b = appendString(b, e.Outcome)
	b = appendString(b, e.Reason)
	b = appendString(b, e.Purpose)
	b = appendStrings(b, e.FieldsSent)
	b = appendStrings(b, e.FieldsStripped)
	b = appendString(b, e.ConsentSource)
	return appendLong(b, e.HeldMs)
}

// destinationDecisionLen is the exact encoded length of an entry: the array block's size.
func destinationDecisionLen(e *DestinationDecision) int {
	return stringSize(e.DecisionID) + stringSize(e.Destination) + stringSize(e.Outcome) + stringSize(e.Reason) +
		stringSize(e.Purpose) + stringsLen(e.FieldsSent) + stringsLen(e.FieldsStripped) + stringSize(e.ConsentSource) + longSize(e.HeldMs)
}

// stringsLen is the exact encoded length of appendStrings(ss).
func stringsLen(ss []string) int {
	if len(ss) == 0 {
		return 1
	}
	size := 0
	for _, s := range ss {
		size += stringSize(s)
	}
	return longSize(-int64(len(ss))) + longSize(int64(size)) + size + 1
}

// decisionSetSize is the encoded length, so the buffer is allocated once.
func decisionSetSize(s *DecisionSet) int {
	return stringSize(s.EventID) + stringSize(s.UserKey) + stringSize(s.EventName) + longSize(s.EventTimeMs) +
		longSize(s.DecidedMs) + stringSize(s.Jurisdiction) + 1 + stringSize(s.PolicyVersion) + stringSize(s.RunID) +
		stringSize(s.ConsentProof) + arrayLen(len(s.Destinations), func(i int) int { return destinationDecisionLen(&s.Destinations[i]) })
}

func readDecisionSet(b []byte, s *DecisionSet) error {
	r := newReader(b)
	readSetEvent(&r, s)
	s.Destinations = []DestinationDecision{}
	r.blocks(func() { s.Destinations = append(s.Destinations, readDestinationDecision(&r)) })
	return r.err
}

// appendSetDecisions reads a DecisionSet's body straight into dst's decisions, without the set's
// own slice: the audit writer's path, once per event.
func appendSetDecisions(dst []Decision, b []byte) ([]Decision, error) {
	r := newReader(b)
	var s DecisionSet
	readSetEvent(&r, &s)
	n := len(dst)
	r.blocks(func() {
		e := readDestinationDecision(&r)
		dst = append(dst, s.decision(&e))
	})
	if r.err != nil {
		clear(dst[n:])
		return dst[:n], r.err
	}
	return dst, nil
}

// readSetEvent reads the fields every destination's decision shares.
func readSetEvent(r *reader, s *DecisionSet) {
	s.EventID = r.str()
	s.UserKey = r.str()
	s.EventName = r.str()
	s.EventTimeMs = r.long()
	s.DecidedMs = r.long()
	s.Jurisdiction = r.str()
	s.GPC = r.boolean()
	s.PolicyVersion = r.str()
	s.RunID = r.str()
	s.ConsentProof = r.str()
}

func readDestinationDecision(r *reader) DestinationDecision {
	var e DestinationDecision
	e.DecisionID = r.str()
	e.Destination = r.str()
	e.Outcome = r.str()
	e.Reason = r.str()
	e.Purpose = r.str()
	e.FieldsSent = r.strings()
	e.FieldsStripped = r.strings()
	e.ConsentSource = r.str()
	e.HeldMs = r.long()
	return e
}
