package audit

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The read side of `tollgate repair`, `tollgate report exposure` and `audit summary --run`: a
// replay run compared with live traffic, per event and destination, in the two directions a
// policy fix has — what live traffic withheld that the fixed policy allows (repair sends it), and
// what live traffic sent that the fixed policy would not have (the exposure report). Decisions are
// read with FINAL; the live side of each join is read only for the run's events, so its size
// follows the run's, not the table's.

// background marks the queries `tollgate repair` makes while live traffic runs: one server
// thread each (max_threads), so a repair's scans of the decisions table — minutes on a large one
// — leave ClickHouse's other cores to the audit writer's inserts. (A priority of its own needs
// os_thread_priority, which ClickHouse 18.16 lacks.)
func background(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_threads": 1}))
}

// RunPolicyVersions returns the policy versions the decisions of a replay run were made under
// (one, unless several replays shared the id); none when the run has no decisions.
func (db *DB) RunPolicyVersions(ctx context.Context, runID string) ([]string, error) {
	var versions []string
	if err := db.QueryRow(background(ctx), `SELECT groupUniqArray(policy_version) FROM `+db.final("decisions")+` WHERE run_id = ?`,
		runID).Scan(&versions); err != nil {
		return nil, fmt.Errorf("run policy versions: %w", err)
	}
	slices.Sort(versions)
	return versions, nil
}

// RepairCandidate is an event a replay run forwards to a destination where live traffic blocked
// it; LiveDecided is when the live decision was made (the send-time consent re-check and the
// delivery ledger key on it), LiveReason why.
type RepairCandidate struct {
	Destination string
	EventID     string
	LiveDecided time.Time
	LiveReason  string
}

// RepairCandidates calls fn with every event the replay run runID forwards to a destination
// (only dest's when not empty) where the live decision blocked it.
func (db *DB) RepairCandidates(ctx context.Context, runID, dest string, fn func(RepairCandidate) error) error {
	destCond, args := "", []any{runID, runID}
	if dest != "" {
		destCond, args = " AND destination = ?", []any{runID, dest, runID, dest}
	}
	rows, err := db.Query(background(ctx), `SELECT destination, event_id, live_decided, live_reason
		FROM (SELECT destination, event_id FROM `+db.final("decisions")+`
			WHERE run_id = ? AND outcome = 'forwarded'`+destCond+`) AS replay
		ANY INNER JOIN (SELECT destination, event_id, decided_at AS live_decided, reason AS live_reason FROM `+db.final("decisions")+`
			WHERE run_id = '' AND outcome = 'blocked' AND (destination, event_id) IN (
				SELECT destination, event_id FROM `+db.final("decisions")+` WHERE run_id = ?)`+destCond+`) AS live_side
		USING (destination, event_id)
		ORDER BY destination, event_id`, args...)
	if err != nil {
		return fmt.Errorf("repair candidates: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c RepairCandidate
		if err := rows.Scan(&c.Destination, &c.EventID, &c.LiveDecided, &c.LiveReason); err != nil {
			return fmt.Errorf("repair candidates: %w", err)
		}
		c.LiveDecided = c.LiveDecided.UTC()
		if err := fn(c); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("repair candidates: %w", err)
	}
	return nil
}

// RunSummary counts the decisions of replay run runID per destination, outcome and reason (as
// Summary does live traffic's).
func (db *DB) RunSummary(ctx context.Context, runID string) ([]SummaryRow, error) {
	return db.decisionSummary(ctx, "run summary", runID)
}

// RunDeliverySummary counts the delivery attempts `tollgate repair` made for replay run runID
// (deliveries.run_id) per destination and status, as DeliverySummary counts all of them.
func (db *DB) RunDeliverySummary(ctx context.Context, runID string) ([]DeliverySummaryRow, error) {
	return readSummary(ctx, db, "run delivery summary", deliveryCounts, "destination, status", "run_id = ?", scanDeliverySummary, runID)
}

// ExposureGroup counts what live traffic sent to a destination that a replay run would not
// have: either the events the run blocks (Key: the run's reason) or one field path the run
// strips from events it still forwards (Key: the path).
type ExposureGroup struct {
	Destination string    `json:"destination"`
	Key         string    `json:"key"`
	Events      uint64    `json:"events"`
	Users       uint64    `json:"users"`
	First       time.Time `json:"first"` // event times
	Last        time.Time `json:"last"`
	UserKeys    []string  `json:"user_keys,omitempty"` // when asked for
}

// ExposureUsers counts the users concerned at one destination, whatever the group.
type ExposureUsers struct {
	Destination string   `json:"destination"`
	Users       uint64   `json:"users"`
	UserKeys    []string `json:"user_keys,omitempty"`
}

// exposureLive is the live side of an exposure query: live decisions that forwarded an event
// the run decided too (one ?, the run).
func (db *DB) exposureLive() string {
	return `(SELECT destination, event_id, user_key, event_time, fields_sent AS live_fields FROM ` + db.final("decisions") + `
		WHERE run_id = '' AND outcome = 'forwarded' AND (destination, event_id) IN (
			SELECT destination, event_id FROM ` + db.final("decisions") + ` WHERE run_id = ?)) AS live_side`
}

// exposureBlockedFrom: events live traffic forwarded and the run blocks (args: run, run).
func (db *DB) exposureBlockedFrom() string {
	return `(SELECT destination, event_id, reason FROM ` + db.final("decisions") + `
			WHERE run_id = ? AND outcome = 'blocked') AS replay
		ANY INNER JOIN ` + db.exposureLive() + ` USING (destination, event_id)`
}

// exposureStrippedFrom: events both forward, one row per live field path the run's fields lack,
// as `field` (args: run, run). No lambda (arrayFilter(f -> NOT has(replay_fields, f), …)):
// 18.16 resolves no column captured inside one.
func (db *DB) exposureStrippedFrom() string {
	return `(SELECT destination, user_key, event_time, field
		FROM (SELECT destination, user_key, event_time, replay_fields, arrayJoin(live_fields) AS field
			FROM (SELECT destination, event_id, fields_sent AS replay_fields FROM ` + db.final("decisions") + `
				WHERE run_id = ? AND outcome = 'forwarded') AS replay
			ANY INNER JOIN ` + db.exposureLive() + ` USING (destination, event_id))
		WHERE NOT has(replay_fields, field))`
}

func usersExpr(withUsers bool) string {
	if withUsers {
		return "groupUniqArray(user_key)"
	}
	return "emptyArrayString()"
}

// ExposureBlocked groups the events live traffic sent that run runID blocks, per destination and
// the run's reason; withUsers lists the user keys of each group.
func (db *DB) ExposureBlocked(ctx context.Context, runID string, withUsers bool) ([]ExposureGroup, error) {
	return readRows(ctx, db, "exposure blocked", scanExposureGroup, `SELECT destination, reason, count(), uniqExact(user_key),
		min(event_time), max(event_time), `+usersExpr(withUsers)+` FROM `+db.exposureBlockedFrom()+`
		GROUP BY destination, reason ORDER BY destination, reason`, runID, runID)
}

// ExposureFields groups, per destination and field path, the events run runID still forwards
// but without a field live traffic sent; withUsers lists the user keys of each group.
func (db *DB) ExposureFields(ctx context.Context, runID string, withUsers bool) ([]ExposureGroup, error) {
	return readRows(ctx, db, "exposure fields", scanExposureGroup, `SELECT destination, field, count(), uniqExact(user_key),
		min(event_time), max(event_time), `+usersExpr(withUsers)+` FROM `+db.exposureStrippedFrom()+`
		GROUP BY destination, field ORDER BY destination, field`, runID, runID)
}

// ExposureUserCounts counts, per destination, the users of every group of ExposureBlocked and
// ExposureFields together (a user in several groups counts once).
func (db *DB) ExposureUserCounts(ctx context.Context, runID string, withUsers bool) ([]ExposureUsers, error) {
	return readRows(ctx, db, "exposure users", func(rows driver.Rows, u *ExposureUsers) error {
		if err := rows.Scan(&u.Destination, &u.Users, &u.UserKeys); err != nil {
			return err
		}
		slices.Sort(u.UserKeys)
		return nil
	}, `SELECT destination, uniqExact(user_key), `+usersExpr(withUsers)+` FROM (
			SELECT destination, user_key FROM `+db.exposureBlockedFrom()+`
			UNION ALL
			SELECT destination, user_key FROM `+db.exposureStrippedFrom()+`)
		GROUP BY destination ORDER BY destination`, runID, runID, runID, runID)
}

func scanExposureGroup(rows driver.Rows, g *ExposureGroup) error {
	if err := rows.Scan(&g.Destination, &g.Key, &g.Events, &g.Users, &g.First, &g.Last, &g.UserKeys); err != nil {
		return err
	}
	g.First, g.Last = g.First.UTC(), g.Last.UTC()
	slices.Sort(g.UserKeys)
	return nil
}
