package audit

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tollgate-dev/tollgate/schemas"
)

// InsertDecisions writes decisions to the decisions table in one insert (and, through the
// materialized view, to decisions_by_user). Inserting a decision again is harmless: copies
// collapse under FINAL. Values outside a column's range are clamped (see toDateTime), so no
// record can make an insert fail for good.
func (db *DB) InsertDecisions(ctx context.Context, ds []schemas.Decision) error {
	if len(ds) == 0 {
		return nil
	}
	batch, err := db.PrepareBatch(db.insertContext(ctx), "INSERT INTO "+db.table("decisions")+" ("+columnNames(decisionsColumns)+")")
	if err != nil {
		return fmt.Errorf("insert decisions: %w", err)
	}
	defer batch.Abort() //nolint:errcheck // a no-op after Send
	// Column-wise appends: one call per column instead of one reflective call per row.
	var (
		n              = len(ds)
		decisionID     = make([]string, n)
		eventID        = make([]string, n)
		userKey        = make([]string, n)
		destination    = make([]string, n)
		eventName      = make([]string, n)
		eventTime      = make([]time.Time, n)
		decidedAt      = make([]time.Time, n)
		outcome        = make([]string, n)
		reason         = make([]string, n)
		purpose        = make([]string, n)
		jurisdiction   = make([]string, n)
		gpc            = make([]uint8, n)
		fieldsSent     = make([][]string, n)
		fieldsStripped = make([][]string, n)
		policyVersion  = make([]string, n)
		runID          = make([]string, n)
		consentSource  = make([]string, n)
		consentProof   = make([]string, n)
		heldMs         = make([]uint32, n)
	)
	for i := range ds {
		d := &ds[i]
		decisionID[i] = d.DecisionID
		eventID[i] = d.EventID
		userKey[i] = d.UserKey
		destination[i] = d.Destination
		eventName[i] = d.EventName
		eventTime[i] = toDateTime(d.EventTimeMs)
		decidedAt[i] = toDateTime(d.DecidedMs)
		outcome[i] = d.Outcome
		reason[i] = d.Reason
		purpose[i] = d.Purpose
		jurisdiction[i] = d.Jurisdiction
		if d.GPC {
			gpc[i] = 1
		}
		fieldsSent[i] = nonNil(d.FieldsSent)
		fieldsStripped[i] = nonNil(d.FieldsStripped)
		policyVersion[i] = d.PolicyVersion
		runID[i] = d.RunID
		consentSource[i] = d.ConsentSource
		consentProof[i] = d.ConsentProof
		heldMs[i] = uint32(min(max(d.HeldMs, 0), math.MaxUint32)) // a hold lasts at most a day (policy)
	}
	for i, col := range []any{decisionID, eventID, userKey, destination, eventName, eventTime, decidedAt,
		outcome, reason, purpose, jurisdiction, gpc, fieldsSent, fieldsStripped, policyVersion, runID,
		consentSource, consentProof, heldMs} {
		if err := appendColumn(batch.Column(i), col); err != nil {
			return fmt.Errorf("insert decisions: column %s: %w", decisionsColumns[i].name, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert decisions: %w", err)
	}
	return nil
}

// InsertDeliveries writes delivery attempts to the deliveries table in one insert. Inserting an
// attempt's record again is harmless: copies share their delivery_id and collapse under FINAL,
// while two real requests have two ids and stay two rows.
func (db *DB) InsertDeliveries(ctx context.Context, ds []schemas.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	batch, err := db.PrepareBatch(db.insertContext(ctx), "INSERT INTO "+db.table("deliveries")+" ("+columnNames(deliveriesColumns)+")")
	if err != nil {
		return fmt.Errorf("insert deliveries: %w", err)
	}
	defer batch.Abort() //nolint:errcheck // a no-op after Send
	var (
		n           = len(ds)
		eventID     = make([]string, n)
		destination = make([]string, n)
		attempt     = make([]uint16, n)
		status      = make([]string, n)
		httpStatus  = make([]uint16, n)
		errText     = make([]string, n)
		latency     = make([]uint32, n)
		at          = make([]time.Time, n)
		deliveryID  = make([]string, n)
		runID       = make([]string, n)
	)
	for i := range ds {
		d := &ds[i]
		eventID[i] = d.EventID
		destination[i] = d.Destination
		attempt[i] = clampUint16(int64(d.Attempt))
		status[i] = d.Status
		httpStatus[i] = clampUint16(int64(d.HTTPStatus))
		errText[i] = d.Error
		latency[i] = clampUint32(d.LatencyMs)
		at[i] = toDateTime(d.AtMs)
		deliveryID[i] = d.DeliveryID
		runID[i] = d.RunID
	}
	for i, col := range []any{eventID, destination, attempt, status, httpStatus, errText, latency, at, deliveryID, runID} {
		if err := batch.Column(i).Append(col); err != nil {
			return fmt.Errorf("insert deliveries: column %s: %w", deliveriesColumns[i].name, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert deliveries: %w", err)
	}
	return nil
}

// appendColumn appends a column's values to a batch: whole, or an array of strings row by row.
// clickhouse-go appends a [][]string through reflection on every element (a fifth of the audit
// writer's CPU in a drain profile), and a []string row without it.
func appendColumn(c driver.BatchColumn, values any) error {
	rows, ok := values.([][]string)
	if !ok {
		return c.Append(values)
	}
	for _, row := range rows {
		if err := c.AppendRow(row); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) insertContext(ctx context.Context) context.Context {
	if len(db.insertSettings) == 0 {
		return ctx
	}
	return clickhouse.Context(ctx, clickhouse.WithSettings(db.insertSettings))
}

// toDateTime turns milliseconds since the epoch into a DateTime value (whole seconds, UTC),
// clamped to what the column can hold (1970-01-01 .. 2106-02-07): a DateTime is a UInt32 of
// seconds, and a client-chosen event time outside that range must not fail a whole batch.
func toDateTime(ms int64) time.Time {
	s := ms / 1000
	switch {
	case s < 0:
		s = 0
	case s > math.MaxUint32:
		s = math.MaxUint32
	}
	return time.Unix(s, 0).UTC()
}

func clampUint16(v int64) uint16 {
	return uint16(min(max(v, 0), math.MaxUint16))
}

func clampUint32(v int64) uint32 {
	return uint32(min(max(v, 0), math.MaxUint32))
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// InsertDuplicates writes absorbed resends to the duplicates table in one insert. Inserting a
// record again is harmless: copies collapse under FINAL.
func (db *DB) InsertDuplicates(ctx context.Context, ds []schemas.Duplicate) error {
	if len(ds) == 0 {
		return nil
	}
	batch, err := db.PrepareBatch(db.insertContext(ctx), "INSERT INTO "+db.table("duplicates")+" ("+columnNames(duplicatesColumns)+")")
	if err != nil {
		return fmt.Errorf("insert duplicates: %w", err)
	}
	defer batch.Abort() //nolint:errcheck // a no-op after Send
	var (
		n       = len(ds)
		eventID = make([]string, n)
		user    = make([]string, n)
		first   = make([]time.Time, n)
		last    = make([]time.Time, n)
		resends = make([]uint32, n)
	)
	for i := range ds {
		d := &ds[i]
		eventID[i], user[i] = d.EventID, d.UserKey
		first[i], last[i] = toDateTime(d.FirstSeenMs), toDateTime(d.LastSeenMs)
		resends[i] = clampUint32(int64(d.Resends))
	}
	for i, col := range []any{eventID, user, first, last, resends} {
		if err := batch.Column(i).Append(col); err != nil {
			return fmt.Errorf("insert duplicates: column %s: %w", duplicatesColumns[i].name, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert duplicates: %w", err)
	}
	return nil
}
