package audit

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The reports behind `tollgate audit user|blocked|diff`, in the documented forms (read.go).

// UserDelivery is what became of one forwarded decision: its last delivery attempt.
type UserDelivery struct {
	Attempts   uint64    `json:"attempts"`
	Status     string    `json:"status"` // of the last attempt: delivered, retrying, dead_lettered, blocked
	HTTPStatus uint16    `json:"http_status"`
	Error      string    `json:"error"`
	At         time.Time `json:"at"`
}

// UserReportRow is one live decision about a user with its delivery outcome (nil: no attempt
// recorded, e.g. blocked, or still queued).
type UserReportRow struct {
	UserDecision
	Delivery *UserDelivery `json:"delivery"`
}

// UserReport answers "what did we send or withhold about this user, where, under what consent,
// and did it arrive": every live decision about userKey (oldest event first, at most limit; 0
// for all) with the last delivery attempt of each.
func (db *DB) UserReport(ctx context.Context, userKey string, limit int) ([]UserReportRow, error) {
	ds, err := db.UserDecisions(ctx, userKey, limit)
	if err != nil || len(ds) == 0 {
		return nil, err
	}
	type lastOf struct {
		dest, event string
		d           UserDelivery
	}
	last, err := readRows(ctx, db, "user deliveries", func(rows driver.Rows, l *lastOf) error {
		if err := rows.Scan(&l.dest, &l.event, &l.d.Attempts, &l.d.Status, &l.d.HTTPStatus, &l.d.Error, &l.d.At); err != nil {
			return err
		}
		l.d.At = l.d.At.UTC()
		return nil
	}, `SELECT destination, event_id, count(), `+lastAttempt("status")+`, `+lastAttempt("http_status")+`, `+lastAttempt("error")+`, max(at)
		FROM `+db.final("deliveries")+`
		WHERE (destination, event_id) IN (`+db.userLive("destination, event_id", "")+`)
		GROUP BY destination, event_id`, userKey)
	if err != nil {
		return nil, err
	}
	type key struct{ dest, event string }
	byKey := map[key]*UserDelivery{}
	for i := range last {
		byKey[key{last[i].dest, last[i].event}] = &last[i].d
	}
	out := make([]UserReportRow, len(ds))
	for i, d := range ds {
		out[i] = UserReportRow{UserDecision: d, Delivery: byKey[key{d.Destination, d.EventID}]}
	}
	return out, nil
}

// BlockedRow counts the live decisions blocked for one destination and reason.
type BlockedRow struct {
	Destination string `json:"destination"`
	Reason      string `json:"reason"`
	Count       uint64 `json:"count"`
}

// Blocked counts live decisions made since the given time that blocked an event, per
// destination and reason (destination ascending, then the biggest count first). It reads the
// decisions table with FINAL; the day partitions before since are skipped.
func (db *DB) Blocked(ctx context.Context, since time.Time) ([]BlockedRow, error) {
	return readRows(ctx, db, "blocked", func(rows driver.Rows, r *BlockedRow) error {
		return rows.Scan(&r.Destination, &r.Reason, &r.Count)
	}, `SELECT destination, reason, count() AS n
		FROM `+db.final("decisions")+`
		WHERE outcome = 'blocked' AND run_id = '' AND decided_at >= ?
		GROUP BY destination, reason
		ORDER BY destination, n DESC, reason`, toDateTime(since.UnixMilli()))
}

// DiffSide is one decision as a diff shows it.
type DiffSide struct {
	Outcome       string   `json:"outcome"`
	Reason        string   `json:"reason"`
	FieldsSent    []string `json:"fields_sent"`
	PolicyVersion string   `json:"policy_version"`
}

// DiffRow is one event and destination whose replayed decision differs from the live one.
type DiffRow struct {
	EventID     string `json:"event_id"`
	Destination string `json:"destination"`
	// Live is nil when the event has no live decision for the destination (e.g. a destination
	// added to the policy since).
	Live   *DiffSide `json:"live"`
	Replay DiffSide  `json:"replay"`
	// FieldsAdded and FieldsRemoved compare fields_sent (replay against live).
	FieldsAdded   []string `json:"fields_added"`
	FieldsRemoved []string `json:"fields_removed"`
}

// DiffCount counts the changed decisions of one kind.
type DiffCount struct {
	Destination   string `json:"destination"`
	LiveOutcome   string `json:"live_outcome"` // "" when there was no live decision
	LiveReason    string `json:"live_reason"`
	ReplayOutcome string `json:"replay_outcome"`
	ReplayReason  string `json:"replay_reason"`
	FieldsChanged bool   `json:"fields_changed"`
	Count         uint64 `json:"count"`
}

// DiffResult compares a replay run with live traffic.
type DiffResult struct {
	RunID string `json:"run_id"`
	// Compared is how many decisions the run made; Changed how many of them differ from the
	// live decision for the same event and destination (or have none).
	Compared uint64      `json:"compared"`
	Changed  uint64      `json:"changed"`
	Counts   []DiffCount `json:"counts"`
	// Rows are the changed decisions, ordered by destination and event id, at most the limit.
	Rows []DiffRow `json:"rows"`
}

// Diff compares the decisions of replay run runID with the live ones (run_id empty) per event and
// destination: what the policy now configured would have decided differently — outcome, reason
// or the fields sent. limit caps the rows returned (0: all); counts always cover every change.
func (db *DB) Diff(ctx context.Context, runID string, limit int) (*DiffResult, error) {
	res := &DiffResult{RunID: runID, Counts: []DiffCount{}, Rows: []DiffRow{}}
	if err := db.QueryRow(ctx, `SELECT count() FROM `+db.final("decisions")+` WHERE run_id = ?`, runID).Scan(&res.Compared); err != nil {
		return nil, fmt.Errorf("diff: %w", err)
	}
	// Field lists are compared as sets (arraySort), so an order change is no change. Both
	// subqueries carry an alias: servers with the new analyzer (24.3 on) refuse JOIN ... USING
	// over unaliased subqueries (Code 206); 18.16 accepts the aliases too.
	type changed struct {
		row  DiffRow
		live uint8
		l    DiffSide
	}
	rows, err := readRows(ctx, db, "diff", func(rows driver.Rows, c *changed) error {
		r := &c.row
		return rows.Scan(&r.Destination, &r.EventID, &r.Replay.Outcome, &r.Replay.Reason, &r.Replay.FieldsSent, &r.Replay.PolicyVersion,
			&c.live, &c.l.Outcome, &c.l.Reason, &c.l.FieldsSent, &c.l.PolicyVersion)
	}, `SELECT destination, event_id, outcome, reason, fields_sent, policy_version,
			live, live_outcome, live_reason, live_fields, live_policy
		FROM (SELECT destination, event_id, outcome, reason, fields_sent, policy_version
			FROM `+db.final("decisions")+` WHERE run_id = ?) AS replay
		ANY LEFT JOIN (SELECT destination, event_id, toUInt8(1) AS live, outcome AS live_outcome, reason AS live_reason,
				fields_sent AS live_fields, policy_version AS live_policy
			FROM `+db.final("decisions")+` WHERE run_id = '') AS live_side
		USING (destination, event_id)
		WHERE live = 0 OR outcome != live_outcome OR reason != live_reason OR arraySort(fields_sent) != arraySort(live_fields)
		ORDER BY destination, event_id`, runID)
	if err != nil {
		return nil, err
	}
	counts := map[DiffCount]uint64{}
	for _, c := range rows {
		r, l := c.row, c.l
		if c.live == 1 {
			r.Live = &l
		}
		r.FieldsAdded, r.FieldsRemoved = minus(r.Replay.FieldsSent, l.FieldsSent), minus(l.FieldsSent, r.Replay.FieldsSent)
		k := DiffCount{Destination: r.Destination, LiveOutcome: l.Outcome, LiveReason: l.Reason,
			ReplayOutcome: r.Replay.Outcome, ReplayReason: r.Replay.Reason,
			FieldsChanged: len(r.FieldsAdded)+len(r.FieldsRemoved) > 0}
		counts[k]++
		res.Changed++
		if limit <= 0 || len(res.Rows) < limit {
			res.Rows = append(res.Rows, r)
		}
	}
	for c, n := range counts {
		c.Count = n
		res.Counts = append(res.Counts, c)
	}
	slices.SortFunc(res.Counts, func(a, b DiffCount) int {
		for _, x := range [][2]string{{a.Destination, b.Destination}, {a.LiveOutcome, b.LiveOutcome}, {a.LiveReason, b.LiveReason},
			{a.ReplayOutcome, b.ReplayOutcome}, {a.ReplayReason, b.ReplayReason},
			{strconv.FormatBool(a.FieldsChanged), strconv.FormatBool(b.FieldsChanged)}} {
			if x[0] != x[1] {
				if x[0] < x[1] {
					return -1
				}
				return 1
			}
		}
		return 0
	})
	return res, nil
}

// minus returns the items of a not in b, in a's order (never nil, for JSON).
func minus(a, b []string) []string {
	out := []string{}
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
