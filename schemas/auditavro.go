package schemas

import (
	"fmt"
	"math"
)

// Hand-written Avro for the audit and ledger records: a sink encodes a Delivery and a
// LedgerEntry for every event it delivers, the ledger follower decodes every LedgerEntry, and the
// audit writer decodes every Decision and Delivery, several per event. Each follows its .avsc
// like appendavro.go / readavro.go; TestAuditRecordsMatchHamba and FuzzReadAuditRecords hold
// them to hamba/avro.

func appendDelivery(b []byte, d *Delivery) []byte {
	b = appendString(b, d.EventID)
	b = appendString(b, d.Destination)
	b = appendLong(b, int64(d.Attempt))
	b = appendString(b, d.Status)
	b = appendLong(b, int64(d.HTTPStatus))
	b = appendString(b, d.Error)
	b = appendLong(b, d.LatencyMs)
	b = appendLong(b, d.AtMs)
	b = appendString(b, d.DeliveryID)
	return appendString(b, d.RunID)
}

func deliverySize(d *Delivery) int {
	return 50 + len(d.EventID) + len(d.Destination) + len(d.Status) + len(d.Error) + len(d.DeliveryID) + len(d.RunID)
}

func readDelivery(b []byte, d *Delivery) error {
	r := newReader(b)
	d.EventID = r.str()
	d.Destination = r.str()
	d.Attempt = r.int32()
	d.Status = r.str()
	d.HTTPStatus = r.int32()
	d.Error = r.str()
	d.LatencyMs = r.long()
	d.AtMs = r.long()
	d.DeliveryID = r.str()
	d.RunID = r.str()
	return r.err
}

func appendLedgerEntry(b []byte, e *LedgerEntry) []byte {
	b = appendString(b, e.EventID)
	b = appendLong(b, e.DecidedMs)
	b = appendLong(b, e.DeliveredMs)
	return appendLong(b, int64(e.Attempt))
}

func ledgerEntrySize(e *LedgerEntry) int { return 32 + len(e.EventID) }

func readLedgerEntry(b []byte, e *LedgerEntry) error {
	r := newReader(b)
	e.EventID = r.str()
	e.DecidedMs = r.long()
	e.DeliveredMs = r.long()
	e.Attempt = r.int32()
	return r.err
}

func readDecision(b []byte, d *Decision) error {
	r := newReader(b)
	d.DecisionID = r.str()
	d.EventID = r.str()
	d.UserKey = r.str()
	d.Destination = r.str()
	d.EventName = r.str()
	d.EventTimeMs = r.long()
	d.DecidedMs = r.long()
	d.Outcome = r.str()
	d.Reason = r.str()
	d.Purpose = r.str()
	d.Jurisdiction = r.str()
	d.GPC = r.boolean()
	d.FieldsSent = r.strings()
	d.FieldsStripped = r.strings()
	d.PolicyVersion = r.str()
	d.RunID = r.str()
	d.ConsentSource = r.str()
	d.ConsentProof = r.str()
	return r.err
}

// int32 is Avro's int: the same zig-zag varint as long, in at most 5 bytes and within 32 bits.
func (r *reader) int32() int {
	v := r.varint(5)
	if v < math.MinInt32 || v > math.MaxInt32 {
		r.fail(fmt.Errorf("int %d out of range", v))
		return 0
	}
	return int(v)
}
