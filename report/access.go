// Package report produces the evidence a privacy team hands over: the data-subject access report
// (GDPR Art. 15: who received which data about a person, when, on what basis) read from the audit
// tables, and the record of processing (Art. 30) generated from the policy.
//
// Reads use only the query forms docs/audit.md documents (FINAL on the ReplacingMergeTree tables,
// argMax for the last delivery attempt), so copies from re-inserted batches never count twice, on
// a single server or on either replica of a cluster. The queries live here, the connection is the
// audit package's.
package report

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tollgate-dev/tollgate/internal/policy"
)

// Legal bases of a destination's processing.
const (
	BasisConsent   = "consent"
	BasisNecessary = "necessary"
)

// Access is the access report of one user.
type Access struct {
	User        string    `json:"user"`
	GeneratedAt time.Time `json:"generated_at"`
	Database    string    `json:"database"`
	// Erased is set when the user has been erased, with the time of the erasure.
	Erased   bool       `json:"erased"`
	ErasedAt *time.Time `json:"erased_at,omitempty"`
	// PolicyVersions are every policy version a decision about the user was made under.
	PolicyVersions []string            `json:"policy_versions"`
	Destinations   []AccessDestination `json:"destinations"`
	// Retention says how long the audit trail keeps the user's key (older decisions are
	// anonymised and no longer attributable to anyone, so they are not in this report).
	AnonymizeAfter string `json:"anonymize_after"`
}

// AccessDestination is what one destination received about the user, or was kept from it.
type AccessDestination struct {
	Name           string            `json:"destination"`
	Type           string            `json:"type"`
	Purposes       []string          `json:"purposes"`
	LegalBasis     string            `json:"legal_basis"`
	Sale           bool              `json:"sale"`
	FieldsSent     []string          `json:"fields_sent"` // field paths, never values
	FieldsHashed   []string          `json:"fields_hashed"`
	First          *time.Time        `json:"first,omitempty"` // earliest and latest event decided
	Last           *time.Time        `json:"last,omitempty"`
	EventsSent     uint64            `json:"events_sent"`
	EventsBlocked  uint64            `json:"events_blocked"`
	BlockedBy      map[string]uint64 `json:"blocked_by_reason"`
	Deliveries     map[string]uint64 `json:"deliveries"` // events by the status of their last attempt
	PolicyVersions []string          `json:"policy_versions"`
}

// identifier guards the database name spliced into SQL (audit.Open checks it too).
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func table(database, name string) string { return "`" + database + "`.`" + name + "`" }

// BuildAccess reads the live decisions and deliveries about user (user_id, or anonymous_id for an
// anonymous user) and the erasure record. Destinations are those of the policy, in its order,
// then any the audit trail names that the policy no longer has.
func BuildAccess(ctx context.Context, conn driver.Conn, database string, pol *policy.Policy, user string, now time.Time) (*Access, error) {
	if !identifier.MatchString(database) {
		return nil, fmt.Errorf("access report: database %q: not a plain identifier", database)
	}
	a := &Access{User: user, GeneratedAt: now.UTC().Truncate(time.Second), Database: database, PolicyVersions: []string{}}
	byDest := map[string]*AccessDestination{}
	dest := func(name string) *AccessDestination {
		if d := byDest[name]; d != nil {
			return d
		}
		d := &AccessDestination{Name: name, Purposes: []string{}, FieldsSent: []string{}, FieldsHashed: []string{},
			BlockedBy: map[string]uint64{}, Deliveries: map[string]uint64{}, PolicyVersions: []string{}}
		if pd := pol.Destinations[name]; pd != nil {
			d.Type, d.Sale, d.Purposes = pd.Type, pd.Sale, []string{pd.Purpose}
		}
		byDest[name] = d
		return d
	}
	for _, name := range pol.Names {
		dest(name)
	}

	// Decisions: one group per destination, outcome, reason and purpose (docs/audit.md, FINAL).
	rows, err := conn.Query(ctx, `SELECT destination, outcome, reason, purpose, count(), min(event_time), max(event_time),
			groupUniqArray(policy_version), groupUniqArrayArray(fields_sent)
		FROM `+table(database, "decisions_by_user")+` FINAL
		WHERE user_key = ? AND run_id = ''
		GROUP BY destination, outcome, reason, purpose`, user)
	if err != nil {
		return nil, fmt.Errorf("access report decisions: %w", err)
	}
	versions := map[string]bool{}
	for rows.Next() {
		var (
			name, outcome, reason, purpose string
			n                              uint64
			first, last                    time.Time
			pv, fields                     []string
		)
		if err := rows.Scan(&name, &outcome, &reason, &purpose, &n, &first, &last, &pv, &fields); err != nil {
			rows.Close()
			return nil, fmt.Errorf("access report decisions: %w", err)
		}
		d := dest(name)
		if outcome == "forwarded" {
			d.EventsSent += n
		} else {
			d.EventsBlocked += n
			d.BlockedBy[reason] += n
		}
		first, last = first.UTC(), last.UTC()
		if d.First == nil || first.Before(*d.First) {
			d.First = &first
		}
		if d.Last == nil || last.After(*d.Last) {
			d.Last = &last
		}
		d.Purposes = addAll(d.Purposes, purpose)
		d.PolicyVersions = addAll(d.PolicyVersions, pv...)
		d.FieldsSent = addAll(d.FieldsSent, fields...)
		for _, v := range pv {
			versions[v] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("access report decisions: %w", err)
	}

	// Deliveries: each forwarded event counted once, by the status of its last attempt (argMax, as
	// docs/audit.md's second query).
	rows, err = conn.Query(ctx, `SELECT destination, last_status, count() FROM (
			SELECT destination, event_id, argMax(status, (at, attempt)) AS last_status
			FROM `+table(database, "deliveries")+` FINAL
			WHERE (destination, event_id) IN (
				SELECT destination, event_id FROM `+table(database, "decisions_by_user")+` FINAL
				WHERE user_key = ? AND run_id = '' AND outcome = 'forwarded')
			GROUP BY destination, event_id)
		GROUP BY destination, last_status`, user)
	if err != nil {
		return nil, fmt.Errorf("access report deliveries: %w", err)
	}
	for rows.Next() {
		var (
			name, status string
			n            uint64
		)
		if err := rows.Scan(&name, &status, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("access report deliveries: %w", err)
		}
		dest(name).Deliveries[status] += n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("access report deliveries: %w", err)
	}

	// Erasure: the erasures table names users by SHA-256 of the key only.
	sum := sha256.Sum256([]byte(user))
	var (
		erasedAt time.Time
		n        uint64
	)
	if err := conn.QueryRow(ctx, `SELECT count(), min(erased_at) FROM `+table(database, "erasures")+` FINAL WHERE user_hash = ?`,
		hex.EncodeToString(sum[:])).Scan(&n, &erasedAt); err != nil {
		return nil, fmt.Errorf("access report erasure: %w", err)
	}
	if n > 0 {
		erasedAt = erasedAt.UTC()
		a.Erased, a.ErasedAt = true, &erasedAt
	}

	for _, name := range pol.Names {
		a.Destinations = append(a.Destinations, *finish(byDest[name], pol))
		delete(byDest, name)
	}
	rest := make([]string, 0, len(byDest))
	for name := range byDest {
		rest = append(rest, name)
	}
	slices.Sort(rest)
	for _, name := range rest {
		a.Destinations = append(a.Destinations, *finish(byDest[name], pol))
	}
	for v := range versions {
		a.PolicyVersions = append(a.PolicyVersions, v)
	}
	slices.Sort(a.PolicyVersions)
	return a, nil
}

// finish sorts the lists and derives the legal basis and hashed fields.
func finish(d *AccessDestination, pol *policy.Policy) *AccessDestination {
	slices.Sort(d.Purposes)
	slices.Sort(d.FieldsSent)
	slices.Sort(d.PolicyVersions)
	d.LegalBasis = BasisConsent
	if len(d.Purposes) > 0 && !slices.ContainsFunc(d.Purposes, func(p string) bool { return p != policy.Necessary }) {
		d.LegalBasis = BasisNecessary
	}
	if pd := pol.Destinations[d.Name]; pd != nil {
		for _, f := range d.FieldsSent {
			if pd.Hashed(f) {
				d.FieldsHashed = append(d.FieldsHashed, f)
			}
		}
	}
	return d
}

// addAll appends the items not yet in list.
func addAll(list []string, items ...string) []string {
	for _, it := range items {
		if it != "" && !slices.Contains(list, it) {
			list = append(list, it)
		}
	}
	return list
}
