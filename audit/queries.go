package audit

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// The read side: every query reads with FINAL (or, for the summaries, merges the daily tables'
// uniqExact states), so copies of a row written twice (a replay, a restarted writer) count once.
// FINAL merges at read time and costs more than a plain SELECT on big tables; the daily
// summaries are the cheap path for long ranges. Every query is a method of *DB and returns data;
// printing it (tables, JSON, CSV) is the command line's business.

// SummaryRow counts live decisions of one destination, outcome and reason.
type SummaryRow struct {
	Destination string `json:"destination"`
	Outcome     string `json:"outcome"`
	Reason      string `json:"reason"`
	Count       uint64 `json:"count"`
}

// Summary counts live traffic's decisions (replays excluded) per destination, outcome and reason,
// ordered by destination, outcome, reason: the "what got forwarded and blocked, and why" report.
// It reads the daily summary table, so its cost does not grow with the decisions table; rows
// deleted by an erasure still count there (the counts hold no personal data).
func (db *DB) Summary(ctx context.Context) ([]SummaryRow, error) {
	rows, err := db.Query(ctx, `SELECT destination, outcome, reason, uniqExactMerge(events)
		FROM `+db.table("decisions_daily")+`
		WHERE run_id = ''
		GROUP BY destination, outcome, reason
		ORDER BY destination, outcome, reason`)
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	defer rows.Close()
	var out []SummaryRow
	for rows.Next() {
		var r SummaryRow
		if err := rows.Scan(&r.Destination, &r.Outcome, &r.Reason, &r.Count); err != nil {
			return nil, fmt.Errorf("summary: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	return out, nil
}

// DeliverySummaryRow counts delivery attempts of one destination with one status.
type DeliverySummaryRow struct {
	Destination string `json:"destination"`
	Status      string `json:"status"`
	Count       uint64 `json:"count"`
}

// DeliverySummary counts delivery attempts per destination and status, ordered by both. It
// counts attempts, not events: an event delivered at its third attempt counts once as
// "delivered" and twice as "retrying". It reads the daily summary table.
func (db *DB) DeliverySummary(ctx context.Context) ([]DeliverySummaryRow, error) {
	rows, err := db.Query(ctx, `SELECT destination, status, uniqExactMerge(attempts)
		FROM `+db.table("deliveries_daily")+`
		GROUP BY destination, status
		ORDER BY destination, status`)
	if err != nil {
		return nil, fmt.Errorf("delivery summary: %w", err)
	}
	defer rows.Close()
	var out []DeliverySummaryRow
	for rows.Next() {
		var r DeliverySummaryRow
		if err := rows.Scan(&r.Destination, &r.Status, &r.Count); err != nil {
			return nil, fmt.Errorf("delivery summary: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("delivery summary: %w", err)
	}
	return out, nil
}

// CountDecisions counts the decisions of one run: runID "" for live traffic, else a replay's run
// id. Copies count once.
func (db *DB) CountDecisions(ctx context.Context, runID string) (uint64, error) {
	var n uint64
	if err := db.QueryRow(ctx, `SELECT count() FROM `+db.table("decisions")+` FINAL WHERE run_id = ?`, runID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count decisions: %w", err)
	}
	return n, nil
}

// CountDeliveries counts delivery attempts. Copies count once.
func (db *DB) CountDeliveries(ctx context.Context) (uint64, error) {
	var n uint64
	if err := db.QueryRow(ctx, `SELECT count() FROM `+db.table("deliveries")+` FINAL`).Scan(&n); err != nil {
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
}

// UserDecisions answers "what did we send where about this user, and under what consent": the
// live decisions (replays excluded) about userKey, oldest event first, at most limit of them
// (0: no limit). It reads decisions_by_user, which is ordered by user, so it touches only that
// user's rows.
func (db *DB) UserDecisions(ctx context.Context, userKey string, limit int) ([]UserDecision, error) {
	q := `SELECT event_time, decided_at, event_id, event_name, destination, outcome, reason, purpose,
			jurisdiction, gpc, fields_sent, fields_stripped, policy_version, run_id, consent_source, consent_proof
		FROM ` + db.table("decisions_by_user") + ` FINAL
		WHERE user_key = ? AND run_id = ''
		ORDER BY event_time, event_id, destination`
	if limit > 0 {
		q += " LIMIT " + strconv.Itoa(limit)
	}
	rows, err := db.Query(ctx, q, userKey)
	if err != nil {
		return nil, fmt.Errorf("user decisions: %w", err)
	}
	defer rows.Close()
	var out []UserDecision
	for rows.Next() {
		var (
			d   UserDecision
			gpc uint8
		)
		if err := rows.Scan(&d.EventTime, &d.DecidedAt, &d.EventID, &d.EventName, &d.Destination, &d.Outcome,
			&d.Reason, &d.Purpose, &d.Jurisdiction, &gpc, &d.FieldsSent, &d.FieldsStripped, &d.PolicyVersion, &d.RunID,
			&d.ConsentSource, &d.ConsentProof); err != nil {
			return nil, fmt.Errorf("user decisions: %w", err)
		}
		d.GPC = gpc == 1
		d.EventTime, d.DecidedAt = d.EventTime.UTC(), d.DecidedAt.UTC()
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("user decisions: %w", err)
	}
	return out, nil
}
