package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/tollgate-dev/tollgate/internal/backoff"
)

// Erasure. A user's decisions live in two tables (decisions, and its by-user copy
// decisions_by_user; in the modern schema that is a view, and only decisions is changed), and
// the deliveries of their events are linked to them by event id; all three are changed
// together. ClickHouse changes rows with mutations (ALTER ... DELETE/UPDATE), which run in the
// background; these functions wait until the mutations are done, so when they return the rows
// are gone. A mutation is only issued when there are rows to change: on 18.16 a
// mutation rewrites every part of the table, so repeating an erasure must cost a count, not a
// rewrite.
//
// Late rows: decisions about a user can reach ClickHouse after the erasure (the audit topics are
// read in parallel, and a lagging partition delivers them later). EraseUser therefore first
// records the user in the erasures table (as a SHA-256, so the list names nobody), and the audit
// writer drops decisions of listed users unless their reason is "erased" (the evidence that
// enforcement held after the erasure). See Writer.filterErased for the race this closes.
//
// Caveat: the audit topics still hold the original records until Kafka's retention removes
// them; replaying tg.audit.decisions into ClickHouse after an erasure brings back only the
// deliveries (no user key), since the writer drops the listed users' decisions.

// userHash is how the erasures table names a user: lower-case hex SHA-256 of the user key.
func userHash(userKey string) string {
	h := sha256.Sum256([]byte(userKey))
	return hex.EncodeToString(h[:])
}

// EraseUser deletes every decision about userKey, live and replayed, from both decision tables,
// and the delivery attempts of those decisions' events, and records the erasure so that late
// decisions about the user are dropped on arrival. It waits until the deletion is done.
// Erasing a user again is harmless and cheap (nothing left to delete: no mutation).
//
// Decisions with reason "erased" are kept: they were made after the erasure, hold no field of
// the user's data (nothing was sent), and are the evidence that the erasure was enforced. The
// audit writer erases again whenever the consent-state changelog repeats the erasure, so deleting
// them would make that evidence come and go.
func (db *DB) EraseUser(ctx context.Context, userKey string) error {
	if err := db.Exec(ctx, `INSERT INTO `+db.table("erasures")+` (user_hash, erased_at) SELECT ?, now()`, userHash(userKey)); err != nil {
		return fmt.Errorf("erase user: record erasure: %w", err)
	}
	events, err := db.userEvents(ctx, userKey)
	if err != nil {
		return err
	}
	// Deliveries first: their link to the user is the decisions about to be deleted.
	for start := 0; start < len(events); start += 1000 {
		chunk := events[start:min(start+1000, len(events))]
		if _, err := db.mutateIfAny(ctx, "deliveries", `DELETE`, `has(?, event_id)`, chunk); err != nil {
			return fmt.Errorf("erase user: %w", err)
		}
	}
	if _, err := db.mutateIfAny(ctx, "duplicates", `DELETE`, `user_key = ?`, userKey); err != nil {
		return fmt.Errorf("erase user: %w", err)
	}
	tables := []string{"decisions", "decisions_by_user"}
	if modern, err := db.modern(ctx); err != nil {
		return fmt.Errorf("erase user: %w", err)
	} else if modern {
		// decisions_by_user is a view of decisions; the mutation rebuilds the projection.
		tables = tables[:1]
	}
	for _, table := range tables {
		if _, err := db.mutateIfAny(ctx, table, `DELETE`, `user_key = ? AND reason != 'erased'`, userKey); err != nil {
			return fmt.Errorf("erase user: %w", err)
		}
	}
	return db.waitMutations(ctx)
}

// userEvents returns the ids of every event (live or replayed) with a decision about userKey that
// EraseUser deletes.
func (db *DB) userEvents(ctx context.Context, userKey string) ([]string, error) {
	return readStrings(ctx, db, "erase user: find events",
		`SELECT DISTINCT event_id FROM `+db.table("decisions_by_user")+` WHERE user_key = ? AND reason != 'erased'`, userKey)
}

// mutateIfAny runs ALTER TABLE table <op> WHERE <where> if any row matches where, and returns
// how many rows matched.
func (db *DB) mutateIfAny(ctx context.Context, table, op, where string, args ...any) (uint64, error) {
	var n uint64
	if err := db.QueryRow(ctx, `SELECT count() FROM `+db.table(table)+` WHERE `+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("%s: %w", table, err)
	}
	if n == 0 {
		return 0, nil
	}
	if err := db.Exec(ctx, `ALTER TABLE `+db.table(table)+` `+op+` WHERE `+where, args...); err != nil {
		return 0, fmt.Errorf("%s: %w", table, err)
	}
	return n, nil
}

// ErasedSince returns the user hashes recorded in the erasures table at or after since (server
// time), and the server's time now, to pass as since next time (minus a margin: see
// Writer.refreshErased).
func (db *DB) ErasedSince(ctx context.Context, since time.Time) (hashes []string, now time.Time, err error) {
	if err := db.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		return nil, now, fmt.Errorf("read erasures: %w", err)
	}
	hashes, err = readStrings(ctx, db, "read erasures",
		`SELECT DISTINCT user_hash FROM `+db.table("erasures")+` WHERE erased_at >= ?`, toDateTime(since.UnixMilli()))
	return hashes, now, err
}

// UserRecipients returns the destinations that received data about userKey: those with a
// delivered attempt for an event of the user's live decisions, sorted by name. Erasure reports
// them (call it before EraseUser: the link from user to event is in the decisions).
func (db *DB) UserRecipients(ctx context.Context, userKey string) ([]string, error) {
	return readStrings(ctx, db, "user recipients", `SELECT DISTINCT destination FROM `+db.final("deliveries")+`
		WHERE status = 'delivered' AND (destination, event_id) IN (`+db.userLive("destination, event_id", " AND outcome = 'forwarded'")+`)
		ORDER BY destination`, userKey)
}

// waitMutations waits until the database has no unfinished mutation. (18.16 has no
// mutations_sync setting to make the ALTER itself wait.)
func (db *DB) waitMutations(ctx context.Context) error {
	for {
		var n uint64
		if err := db.QueryRow(ctx, `SELECT count() FROM system.mutations WHERE database = ? AND is_done = 0`, db.Database).Scan(&n); err != nil {
			return fmt.Errorf("wait for mutations: %w", err)
		}
		if n == 0 {
			return nil
		}
		if err := backoff.Sleep(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("wait for mutations: %w", err)
		}
	}
}
