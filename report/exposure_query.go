package report

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The exposure report's queries: a replay run against live traffic, the live decisions that
// forwarded an event the run blocks or sends with fewer fields. Like the access report's, they
// read decisions with FINAL. (They live here, not in audit, because audit's statement tests
// import this package.)

// exposureGroup counts what live traffic sent to a destination that a replay run would not
// have: either the events the run blocks (Key: the run's reason) or one field path the run
// strips from events it still forwards (Key: the path).
type exposureGroup struct {
	Destination string    `json:"destination"`
	Key         string    `json:"key"`
	Events      uint64    `json:"events"`
	Users       uint64    `json:"users"`
	First       time.Time `json:"first"` // event times
	Last        time.Time `json:"last"`
	UserKeys    []string  `json:"user_keys,omitempty"` // when asked for
}

// exposureUsers counts the users concerned at one destination, whatever the group.
type exposureUsers struct {
	Destination string   `json:"destination"`
	Users       uint64   `json:"users"`
	UserKeys    []string `json:"user_keys,omitempty"`
}

// exposureQuerier runs the exposure queries on one audit database.
type exposureQuerier struct {
	conn     driver.Conn
	database string
}

func (q exposureQuerier) table(name string) string { return table(q.database, name) }

// live is the live side of an exposure query: live decisions that forwarded an event
// the run decided too (so its size follows the run's).
func (q exposureQuerier) live() string {
	return `(SELECT destination, event_id, user_key, event_time, fields_sent AS live_fields FROM ` + q.table("decisions") + ` FINAL
		WHERE run_id = '' AND outcome = 'forwarded' AND (destination, event_id) IN (
			SELECT destination, event_id FROM ` + q.table("decisions") + ` FINAL WHERE run_id = ?)) AS live_side`
}

// blockedFrom: events live traffic forwarded and the run blocks (args: run, run).
func (q exposureQuerier) blockedFrom() string {
	return `(SELECT destination, event_id, reason FROM ` + q.table("decisions") + ` FINAL
			WHERE run_id = ? AND outcome = 'blocked') AS replay
		ANY INNER JOIN ` + q.live() + ` USING (destination, event_id)`
}

// strippedFrom: events both forward, with the live field paths the run's lacks as
// `field`, one row per path (args: run, run).
func (q exposureQuerier) strippedFrom() string {
	// No lambda (arrayFilter(f -> NOT has(replay_fields, f), ...)): 18.16 resolves no column
	// captured inside one. One row per live field, kept when the run's fields lack it.
	return `(SELECT destination, user_key, event_time, field
		FROM (SELECT destination, user_key, event_time, replay_fields, arrayJoin(live_fields) AS field
			FROM (SELECT destination, event_id, fields_sent AS replay_fields FROM ` + q.table("decisions") + ` FINAL
				WHERE run_id = ? AND outcome = 'forwarded') AS replay
			ANY INNER JOIN ` + q.live() + ` USING (destination, event_id))
		WHERE NOT has(replay_fields, field))`
}

func usersExpr(withUsers bool) string {
	if withUsers {
		return "groupUniqArray(user_key)"
	}
	return "emptyArrayString()"
}

// blocked groups the events live traffic sent that run runID blocks, per destination and
// the run's reason; withUsers lists the user keys of each group.
func (q exposureQuerier) blocked(ctx context.Context, runID string, withUsers bool) ([]exposureGroup, error) {
	return q.groups(ctx, "exposure blocked", `SELECT destination, reason, count(), uniqExact(user_key), min(event_time), max(event_time), `+
		usersExpr(withUsers)+` FROM `+q.blockedFrom()+` GROUP BY destination, reason ORDER BY destination, reason`, runID, runID)
}

// fields groups, per destination and field path, the events run runID still forwards
// but without a field live traffic sent; withUsers lists the user keys of each group.
func (q exposureQuerier) fields(ctx context.Context, runID string, withUsers bool) ([]exposureGroup, error) {
	return q.groups(ctx, "exposure fields", `SELECT destination, field, count(), uniqExact(user_key), min(event_time), max(event_time), `+
		usersExpr(withUsers)+` FROM `+q.strippedFrom()+` GROUP BY destination, field ORDER BY destination, field`, runID, runID)
}

// users counts, per destination, the users of every group of blocked and fields
// together (a user in several groups counts once).
func (q exposureQuerier) users(ctx context.Context, runID string, withUsers bool) ([]exposureUsers, error) {
	rows, err := q.conn.Query(ctx, `SELECT destination, uniqExact(user_key), `+usersExpr(withUsers)+` FROM (
			SELECT destination, user_key FROM `+q.blockedFrom()+`
			UNION ALL
			SELECT destination, user_key FROM `+q.strippedFrom()+`)
		GROUP BY destination ORDER BY destination`, runID, runID, runID, runID)
	if err != nil {
		return nil, fmt.Errorf("exposure users: %w", err)
	}
	defer rows.Close()
	var out []exposureUsers
	for rows.Next() {
		var u exposureUsers
		if err := rows.Scan(&u.Destination, &u.Users, &u.UserKeys); err != nil {
			return nil, fmt.Errorf("exposure users: %w", err)
		}
		slices.Sort(u.UserKeys)
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("exposure users: %w", err)
	}
	return out, nil
}

func (q exposureQuerier) groups(ctx context.Context, what, query string, args ...any) ([]exposureGroup, error) {
	rows, err := q.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []exposureGroup
	for rows.Next() {
		var g exposureGroup
		if err := rows.Scan(&g.Destination, &g.Key, &g.Events, &g.Users, &g.First, &g.Last, &g.UserKeys); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		g.First, g.Last = g.First.UTC(), g.Last.UTC()
		slices.Sort(g.UserKeys)
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
