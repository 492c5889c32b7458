package audit

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The read side: every read of the audit tables — the CLI's (cmd/tollgate audit), the access
// report's (report/), erasure's — is a method of *DB in the read*.go files that returns data;
// printing it (tables, JSON, CSV, HTML) is the caller's business. Each reads in one of the forms
// docs/audit.md "Reading without double counting" documents, so copies of a row written twice (a
// replay, a restarted writer) count once, on a single server and on either replica of a cluster:
//
//   - a ReplacingMergeTree table with FINAL (db.final): FINAL merges at read time and costs more
//     than a plain SELECT on big tables;
//   - a user's live decisions from decisions_by_user, ordered by user so a lookup touches only
//     that user's rows (db.userLive);
//   - the last delivery attempt of an event by argMax(…, (at, attempt)) (lastAttempt);
//   - counts over long ranges from each ended day's counts plus the days after them with FINAL
//     (counts.go), whose cost does not grow with the tables.

// final is the documented FROM of a ReplacingMergeTree table.
func (db *DB) final(table string) string { return db.table(table) + " FINAL" }

// userLive selects cols of the live decisions (replays excluded) about the user bound to its one
// ?, with the further conditions and = '…' pairs of and.
func (db *DB) userLive(cols, and string) string {
	return `SELECT ` + cols + ` FROM ` + db.final("decisions_by_user") + ` WHERE user_key = ? AND run_id = ''` + and
}

// lastAttempt is the value of a deliveries column at an event's last attempt.
func lastAttempt(col string) string { return "argMax(" + col + ", (at, attempt))" }

// readRows runs query and scans each row with scan; an error says what was being read.
func readRows[T any](ctx context.Context, conn driver.Conn, what string, scan func(rows driver.Rows, row *T) error, query string, args ...any) ([]T, error) {
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var row T
		if err := scan(rows, &row); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// readStrings reads a one-column query of strings.
func readStrings(ctx context.Context, conn driver.Conn, what, query string, args ...any) ([]string, error) {
	return readRows(ctx, conn, what, func(rows driver.Rows, s *string) error { return rows.Scan(s) }, query, args...)
}

// SummaryRow counts live decisions of one destination, outcome and reason.
type SummaryRow struct {
	Destination string `json:"destination"`
	Outcome     string `json:"outcome"`
	Reason      string `json:"reason"`
	Count       uint64 `json:"count"`
}

// Summary counts live traffic's decisions (replays excluded) per destination, outcome and reason,
// ordered by destination, outcome, reason: the "what got forwarded and blocked, and why" report.
// It adds up the counted days (counts.go) and counts the days after them, so its cost does not
// grow with the decisions table; rows an erasure deleted after their day was counted still
// count (the counts hold no personal data).
func (db *DB) Summary(ctx context.Context) ([]SummaryRow, error) {
	return db.decisionSummary(ctx, "summary", "")
}

// decisionSummary counts the decisions of one run ("" for live traffic) per destination,
// outcome and reason.
func (db *DB) decisionSummary(ctx context.Context, what, runID string) ([]SummaryRow, error) {
	return readSummary(ctx, db, what, decisionCounts, "destination, outcome, reason", "run_id = ?", func(rows driver.Rows, r *SummaryRow) error {
		return rows.Scan(&r.Destination, &r.Outcome, &r.Reason, &r.Count)
	}, runID)
}

// DeliverySummaryRow counts delivery attempts of one destination with one status.
type DeliverySummaryRow struct {
	Destination string `json:"destination"`
	Status      string `json:"status"`
	Count       uint64 `json:"count"`
}

// DeliverySummary counts delivery attempts per destination and status, ordered by both. It
// counts attempts, not events: an event delivered at its third attempt counts once as
// "delivered" and twice as "retrying". It adds up the counted days and counts the days after
// them, as Summary does.
func (db *DB) DeliverySummary(ctx context.Context) ([]DeliverySummaryRow, error) {
	return readSummary(ctx, db, "delivery summary", deliveryCounts, "destination, status", "1", scanDeliverySummary)
}

func scanDeliverySummary(rows driver.Rows, r *DeliverySummaryRow) error {
	return rows.Scan(&r.Destination, &r.Status, &r.Count)
}

// CountDecisions counts the decisions of one run: runID "" for live traffic, else a replay's run
// id. Copies count once.
func (db *DB) CountDecisions(ctx context.Context, runID string) (uint64, error) {
	var n uint64
	if err := db.QueryRow(ctx, `SELECT count() FROM `+db.final("decisions")+` WHERE run_id = ?`, runID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count decisions: %w", err)
	}
	return n, nil
}

// CountDeliveries counts delivery attempts. Copies count once.
func (db *DB) CountDeliveries(ctx context.Context) (uint64, error) {
	var n uint64
	if err := db.QueryRow(ctx, `SELECT count() FROM `+db.final("deliveries")).Scan(&n); err != nil {
		return 0, fmt.Errorf("count deliveries: %w", err)
	}
	return n, nil
}

// UserDecision is one decision about a user, as the user report shows it.
type UserDecision struct {
	EventTime      time.Time `json:"event_time"`
	DecidedAt      time.Time `json:"decided_at"`
	EventID        string    `json:"event_id"`
	EventName      string    `json:"event_name"`
	Destination    string    `json:"destination"`
	Outcome        string    `json:"outcome"`
	Reason         string    `json:"reason"`
	Purpose        string    `json:"purpose"`
	Jurisdiction   string    `json:"jurisdiction"`
	GPC            bool      `json:"gpc"`
	FieldsSent     []string  `json:"fields_sent"`
	FieldsStripped []string  `json:"fields_stripped"`
	PolicyVersion  string    `json:"policy_version"`
	RunID          string    `json:"run_id"`
	ConsentSource  string    `json:"consent_source"`
	ConsentProof   string    `json:"consent_proof"`
	// HeldMs is how long the event waited for the user's choice under the policy's hold (0:
	// not held; decided_at is when the hold released it).
	HeldMs uint32 `json:"held_ms"`
}

// UserDecisions answers "what did we send where about this user, and under what consent": the
// live decisions (replays excluded) about userKey, oldest event first, at most limit of them
// (0: no limit).
func (db *DB) UserDecisions(ctx context.Context, userKey string, limit int) ([]UserDecision, error) {
	q := db.userLive(`event_time, decided_at, event_id, event_name, destination, outcome, reason, purpose,
			jurisdiction, gpc, fields_sent, fields_stripped, policy_version, run_id, consent_source, consent_proof, held_ms`, `
		ORDER BY event_time, event_id, destination`)
	if limit > 0 {
		q += " LIMIT " + strconv.Itoa(limit)
	}
	return readRows(ctx, db, "user decisions", func(rows driver.Rows, d *UserDecision) error {
		var gpc uint8
		if err := rows.Scan(&d.EventTime, &d.DecidedAt, &d.EventID, &d.EventName, &d.Destination, &d.Outcome,
			&d.Reason, &d.Purpose, &d.Jurisdiction, &gpc, &d.FieldsSent, &d.FieldsStripped, &d.PolicyVersion, &d.RunID,
			&d.ConsentSource, &d.ConsentProof, &d.HeldMs); err != nil {
			return err
		}
		d.GPC = gpc == 1
		d.EventTime, d.DecidedAt = d.EventTime.UTC(), d.DecidedAt.UTC()
		return nil
	}, q, userKey)
}
