package schemas

import "slices"

// Hand-written Avro of the delivery journal's record (journal.avsc, version 2), like
// appendavro.go and readavro.go: a sink encodes one per round of intents or outcomes and decodes
// every record of the topic into its ledger store, and the audit writer decodes every one for
// its deliveries rows. hamba/avro's reflective encoder and decoder were 4 % of a sink's CPU and
// 4.5 % of the audit writer's in the drain profiles. Arrays are written in hamba/avro's blocks of
// avroBlockLength items (appendArray), so the bytes are hamba/avro's own: TestJournalMatchesHamba and
// FuzzReadJournal hold the two to each other.

func appendJournal(b []byte, j *JournalRecord) []byte {
	b = appendString(b, j.Destination)
	b = appendString(b, j.Writer)
	b = appendLong(b, j.AtMs)
	return appendArray(b, len(j.Requests), func(b []byte, i int) []byte { return appendJournalRequest(b, &j.Requests[i]) })
}

func appendJournalRequest(b []byte, q *JournalRequest) []byte {
	b = appendString(b, q.Kind)
	b = appendString(b, q.RequestID)
	b = appendString(b, q.Source)
	b = appendLong(b, int64(q.Partition))
	b = appendLong(b, q.AtMs)
	b = appendLong(b, int64(q.HTTPStatus))
	b = appendLong(b, q.LatencyMs)
	b = appendBool(b, q.Resend)
	return appendArray(b, len(q.Events), func(b []byte, i int) []byte { return appendJournalEvent(b, &q.Events[i]) })
}

func appendJournalEvent(b []byte, e *JournalEvent) []byte {
	b = appendString(b, e.EventID)
	b = appendLong(b, e.DecidedMs)
	b = appendLong(b, int64(e.Attempt))
	b = appendString(b, e.Status)
	b = appendString(b, e.Error)
	return appendString(b, e.RunID)
}

// journalSize is the exact encoded length, so the buffer is allocated once.
func journalSize(j *JournalRecord) int {
	return stringSize(j.Destination) + stringSize(j.Writer) + longSize(j.AtMs) +
		arrayLen(len(j.Requests), func(i int) int { return journalRequestLen(&j.Requests[i]) })
}

func journalRequestLen(q *JournalRequest) int {
	return stringSize(q.Kind) + stringSize(q.RequestID) + stringSize(q.Source) + longSize(int64(q.Partition)) +
		longSize(q.AtMs) + longSize(int64(q.HTTPStatus)) + longSize(q.LatencyMs) + 1 +
		arrayLen(len(q.Events), func(i int) int { return journalEventLen(&q.Events[i]) })
}

func journalEventLen(e *JournalEvent) int {
	return stringSize(e.EventID) + longSize(e.DecidedMs) + longSize(int64(e.Attempt)) + stringSize(e.Status) +
		stringSize(e.Error) + stringSize(e.RunID)
}

// readJournal reads a JournalRecord's body. Each array grows by its block's count, at most
// avroBlockLength (the blocks this codec and hamba/avro write): a hostile count cannot make it
// reserve more than its items' bytes justify.
func readJournal(b []byte, j *JournalRecord) error {
	r := newReader(b)
	j.Destination = r.str()
	j.Writer = r.str()
	j.AtMs = r.long()
	j.Requests = []JournalRequest{}
	r.sizedBlocks(func(n int) { j.Requests = slices.Grow(j.Requests, min(n, avroBlockLength)) }, func() {
		j.Requests = append(j.Requests, JournalRequest{})
		q := &j.Requests[len(j.Requests)-1] // filled in place: no copy of a request per item
		q.Kind = r.str()
		q.RequestID = r.str()
		q.Source = r.str()
		q.Partition = int32(r.int32())
		q.AtMs = r.long()
		q.HTTPStatus = r.int32()
		q.LatencyMs = r.long()
		q.Resend = r.boolean()
		q.Events = []JournalEvent{}
		r.sizedBlocks(func(n int) { q.Events = slices.Grow(q.Events, min(n, avroBlockLength)) }, func() {
			q.Events = append(q.Events, JournalEvent{})
			e := &q.Events[len(q.Events)-1]
			e.EventID = r.str()
			e.DecidedMs = r.long()
			e.Attempt = r.int32()
			e.Status = r.str()
			e.Error = r.str()
			e.RunID = r.str()
		})
	})
	return r.err
}
