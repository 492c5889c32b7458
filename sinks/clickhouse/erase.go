package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Erasure and retention. A user's decisions live in two tables (decisions, and its by-user copy
// decisions_by_user), so both must be changed together; these functions do that. ClickHouse
// changes rows with mutations (ALTER ... DELETE/UPDATE), which run in the background; the
// functions wait until the mutations are done, so when they return the rows are gone.
//
// user_key is a sorting-key column of decisions_by_user, and ClickHouse cannot UPDATE a key
// column: anonymising deletes the by-user copies instead (a user lookup cannot find anonymous
// rows anyway), and updates user_key in decisions.
//
// Caveat: the audit topics still hold the original records until Kafka's retention removes
// them; replaying tg.audit.decisions into ClickHouse after an erasure would bring the rows back.

// EraseUser deletes every decision about userKey, live and replayed, from both decision tables
// and waits until the deletion is done. Deliveries carry no user key and are kept.
func EraseUser(ctx context.Context, conn driver.Conn, database, userKey string) error {
	if err := checkDatabase(database); err != nil {
		return err
	}
	for _, table := range []string{"decisions", "decisions_by_user"} {
		if err := conn.Exec(ctx, `ALTER TABLE `+qualified(database, table)+` DELETE WHERE user_key = ?`, userKey); err != nil {
			return fmt.Errorf("erase user from %s: %w", table, err)
		}
	}
	return waitMutations(ctx, conn, database)
}

// AnonymizeBefore blanks user_key in every decision decided before the given time (and deletes
// those rows' by-user copies), then waits until the change is done. It is the retention job:
// DESIGN.md anonymises audit rows older than 90 days by default.
func AnonymizeBefore(ctx context.Context, conn driver.Conn, database string, before time.Time) error {
	if err := checkDatabase(database); err != nil {
		return err
	}
	cutoff := toDateTime(before.UnixMilli())
	if err := conn.Exec(ctx, `ALTER TABLE `+qualified(database, "decisions")+` UPDATE user_key = ''
		WHERE decided_at < ? AND user_key != ''`, cutoff); err != nil {
		return fmt.Errorf("anonymize decisions: %w", err)
	}
	if err := conn.Exec(ctx, `ALTER TABLE `+qualified(database, "decisions_by_user")+` DELETE WHERE decided_at < ?`, cutoff); err != nil {
		return fmt.Errorf("anonymize decisions_by_user: %w", err)
	}
	return waitMutations(ctx, conn, database)
}

// UserRecipients returns the destinations that received data about userKey: those with a
// delivered attempt for an event of the user's live decisions, sorted by name. Erasure reports
// them (call it before EraseUser: the link from user to event is in the decisions).
func UserRecipients(ctx context.Context, conn driver.Conn, database, userKey string) ([]string, error) {
	if err := checkDatabase(database); err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, `SELECT DISTINCT destination FROM `+qualified(database, "deliveries")+` FINAL
		WHERE status = 'delivered' AND (destination, event_id) IN (
			SELECT destination, event_id FROM `+qualified(database, "decisions_by_user")+` FINAL
			WHERE user_key = ? AND run_id = '' AND outcome = 'forwarded')
		ORDER BY destination`, userKey)
	if err != nil {
		return nil, fmt.Errorf("user recipients: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("user recipients: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("user recipients: %w", err)
	}
	return out, nil
}

// waitMutations waits until the database has no unfinished mutation. (18.16 has no
// mutations_sync setting to make the ALTER itself wait.)
func waitMutations(ctx context.Context, conn driver.Conn, database string) error {
	for {
		var n uint64
		if err := conn.QueryRow(ctx, `SELECT count() FROM system.mutations WHERE database = ? AND is_done = 0`, database).Scan(&n); err != nil {
			return fmt.Errorf("wait for mutations: %w", err)
		}
		if n == 0 {
			return nil
		}
		if !sleep(ctx, 50*time.Millisecond) {
			return fmt.Errorf("wait for mutations: %w", ctx.Err())
		}
	}
}
