package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// AccessGroup counts a user's live decisions of one destination, outcome, reason and purpose.
type AccessGroup struct {
	Destination, Outcome, Reason, Purpose string
	Count                                 uint64
	// First and Last are the earliest and latest event times.
	First, Last time.Time
	// PolicyVersions and FieldsSent are the distinct policy versions and field paths (never
	// values) of the group's decisions.
	PolicyVersions, FieldsSent []string
	// Held counts the group's decisions whose event waited for the user's choice under the
	// policy's hold; HeldMaxMs is the longest wait.
	Held      uint64
	HeldMaxMs uint32
}

// AccessDeliveries counts a user's forwarded events of one destination by the status of their
// last delivery attempt.
type AccessDeliveries struct {
	Destination, Status string
	Count               uint64
}

// UserAccess is what the audit trail holds about one user: what the access report
// (report.BuildAccess) is made of.
type UserAccess struct {
	Decisions  []AccessGroup
	Deliveries []AccessDeliveries
	// ErasedAt is when the user was erased (nil: never).
	ErasedAt *time.Time
}

// UserAccess reads the live decisions and deliveries about user (user_id, or anonymous_id for
// an anonymous user) and the erasure record, each event counted once.
func (db *DB) UserAccess(ctx context.Context, user string) (*UserAccess, error) {
	var a UserAccess
	var err error
	a.Decisions, err = readRows(ctx, db, "access report decisions", func(rows driver.Rows, g *AccessGroup) error {
		if err := rows.Scan(&g.Destination, &g.Outcome, &g.Reason, &g.Purpose, &g.Count, &g.First, &g.Last,
			&g.PolicyVersions, &g.FieldsSent, &g.Held, &g.HeldMaxMs); err != nil {
			return err
		}
		g.First, g.Last = g.First.UTC(), g.Last.UTC()
		return nil
	}, db.userLive(`destination, outcome, reason, purpose, count(), min(event_time), max(event_time),
			groupUniqArray(policy_version), groupUniqArrayArray(fields_sent), countIf(held_ms > 0), max(held_ms)`, `
		GROUP BY destination, outcome, reason, purpose`), user)
	if err != nil {
		return nil, err
	}
	// Each forwarded event counted once, by the status of its last attempt.
	a.Deliveries, err = readRows(ctx, db, "access report deliveries", func(rows driver.Rows, d *AccessDeliveries) error {
		return rows.Scan(&d.Destination, &d.Status, &d.Count)
	}, `SELECT destination, last_status, count() FROM (
			SELECT destination, event_id, `+lastAttempt("status")+` AS last_status
			FROM `+db.final("deliveries")+`
			WHERE (destination, event_id) IN (`+db.userLive("destination, event_id", " AND outcome = 'forwarded'")+`)
			GROUP BY destination, event_id)
		GROUP BY destination, last_status`, user)
	if err != nil {
		return nil, err
	}
	// The erasures table names users by SHA-256 of the key only.
	var (
		erasedAt time.Time
		n        uint64
	)
	if err := db.QueryRow(ctx, `SELECT count(), min(erased_at) FROM `+db.final("erasures")+` WHERE user_hash = ?`,
		userHash(user)).Scan(&n, &erasedAt); err != nil {
		return nil, fmt.Errorf("access report erasure: %w", err)
	}
	if n > 0 {
		erasedAt = erasedAt.UTC()
		a.ErasedAt = &erasedAt
	}
	return &a, nil
}
