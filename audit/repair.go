package audit

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// The read side of `tollgate repair` and `tollgate report exposure`: a replay run compared with
// live traffic, per event and destination, in the two directions a policy fix has — what live
// traffic withheld that the fixed policy allows (repair sends it), and what live traffic sent that
// the fixed policy would not have (the exposure report). Both read decisions with FINAL.

// RunPolicyVersions returns the policy versions the decisions of a replay run were made under
// (one, unless the run's decisions came from several replays sharing an id).
func (db *DB) RunPolicyVersions(ctx context.Context, runID string) ([]string, error) {
	var versions []string
	if err := db.QueryRow(ctx, `SELECT groupUniqArray(policy_version) FROM `+db.table("decisions")+` FINAL WHERE run_id = ?`,
		runID).Scan(&versions); err != nil {
		return nil, fmt.Errorf("run policy versions: %w", err)
	}
	slices.Sort(versions)
	return versions, nil
}

// RepairCandidate is an event a replay run forwards to a destination where live traffic blocked
// it; LiveDecided is when the live decision was made (the send-time consent re-check and the
// delivery ledger key on it).
type RepairCandidate struct {
	Destination string
	EventID     string
	LiveDecided time.Time
}

// RepairCandidates calls fn with every event the replay run runID forwards to a destination
// (only dest's when not empty) where the live decision blocked it. The live side is read only for
// the run's events, so its size follows the run's, not the table's.
func (db *DB) RepairCandidates(ctx context.Context, runID, dest string, fn func(RepairCandidate) error) error {
	destCond, args := "", []any{runID, runID}
	if dest != "" {
		destCond, args = " AND destination = ?", []any{runID, dest, runID, dest}
	}
	rows, err := db.Query(ctx, `SELECT destination, event_id, live_decided
		FROM (SELECT destination, event_id FROM `+db.table("decisions")+` FINAL
			WHERE run_id = ? AND outcome = 'forwarded'`+destCond+`) AS replay
		ANY INNER JOIN (SELECT destination, event_id, decided_at AS live_decided FROM `+db.table("decisions")+` FINAL
			WHERE run_id = '' AND outcome = 'blocked' AND (destination, event_id) IN (
				SELECT destination, event_id FROM `+db.table("decisions")+` FINAL WHERE run_id = ?)`+destCond+`) AS live_side
		USING (destination, event_id)
		ORDER BY destination, event_id`, args...)
	if err != nil {
		return fmt.Errorf("repair candidates: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c RepairCandidate
		if err := rows.Scan(&c.Destination, &c.EventID, &c.LiveDecided); err != nil {
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
// Summary does live traffic's), from the daily summary table.
func (db *DB) RunSummary(ctx context.Context, runID string) ([]SummaryRow, error) {
	rows, err := db.Query(ctx, `SELECT destination, outcome, reason, uniqExactMerge(events)
		FROM `+db.table("decisions_daily")+`
		WHERE run_id = ?
		GROUP BY destination, outcome, reason
		ORDER BY destination, outcome, reason`, runID)
	if err != nil {
		return nil, fmt.Errorf("run summary: %w", err)
	}
	defer rows.Close()
	var out []SummaryRow
	for rows.Next() {
		var r SummaryRow
		if err := rows.Scan(&r.Destination, &r.Outcome, &r.Reason, &r.Count); err != nil {
			return nil, fmt.Errorf("run summary: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("run summary: %w", err)
	}
	return out, nil
}

// RunDeliverySummary counts the delivery attempts `tollgate repair` made for replay run runID
// (deliveries.run_id) per destination and status. It reads deliveries with FINAL: the daily
// summary table does not keep the run id.
func (db *DB) RunDeliverySummary(ctx context.Context, runID string) ([]DeliverySummaryRow, error) {
	rows, err := db.Query(ctx, `SELECT destination, status, count()
		FROM `+db.table("deliveries")+` FINAL
		WHERE run_id = ?
		GROUP BY destination, status
		ORDER BY destination, status`, runID)
	if err != nil {
		return nil, fmt.Errorf("run delivery summary: %w", err)
	}
	defer rows.Close()
	var out []DeliverySummaryRow
	for rows.Next() {
		var r DeliverySummaryRow
		if err := rows.Scan(&r.Destination, &r.Status, &r.Count); err != nil {
			return nil, fmt.Errorf("run delivery summary: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("run delivery summary: %w", err)
	}
	return out, nil
}
