package report

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/audit"
	"github.com/tollgate-dev/tollgate/internal/policy"
)

// Exposure is the exposure report of a replay run: per destination, what live traffic sent that
// the policy the run replayed would not have — the events it now blocks and the field paths it
// now strips, with the users concerned and the first and last event time. It is what a privacy
// team needs to assess a breach (GDPR Art. 33, 34) and to tell the recipients (Art. 19).
// Counts are of live decisions that forwarded an event (what was handed to delivery); the
// deliveries table says which of them the vendor accepted.
type Exposure struct {
	RunID       string    `json:"run_id"`
	GeneratedAt time.Time `json:"generated_at"`
	Database    string    `json:"database"`
	// PolicyVersions are the versions the run was decided under (the fixed policy).
	PolicyVersions []string              `json:"policy_versions"`
	Destinations   []ExposureDestination `json:"destinations"`
	// Labels names each field path of the report in words (policy.Label).
	Labels map[string]string `json:"labels"`
}

// ExposureDestination is what one destination received that the fixed policy withholds.
type ExposureDestination struct {
	Name    string `json:"destination"`
	Type    string `json:"type"`
	Purpose string `json:"purpose"`
	Sale    bool   `json:"sale"`
	// Blocked: events the fixed policy blocks, by its reason.
	Blocked []ExposureBlocked `json:"events_blocked"`
	// Fields: field paths the fixed policy strips from events it still forwards.
	Fields []ExposureField `json:"fields_stripped"`
	// Users concerned by either (each once); UserKeys with --users.
	Users    uint64   `json:"users"`
	UserKeys []string `json:"user_keys,omitempty"`
}

// ExposureBlocked counts the events of one replayed reason.
type ExposureBlocked struct {
	Reason   string    `json:"reason"`
	Events   uint64    `json:"events"`
	Users    uint64    `json:"users"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	UserKeys []string  `json:"user_keys,omitempty"`
}

// ExposureField counts the events sent with one field path the fixed policy strips.
type ExposureField struct {
	Path     string    `json:"path"`
	Label    string    `json:"label"`
	Events   uint64    `json:"events"`
	Users    uint64    `json:"users"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	UserKeys []string  `json:"user_keys,omitempty"`
}

// BuildExposure reads the exposure of replay run runID (audit's Exposure* queries); withUsers
// lists user keys. Destinations are those of the policy, in its order, then any the audit trail
// names that it no longer has.
func BuildExposure(ctx context.Context, db *audit.DB, pol *policy.Policy, runID string, withUsers bool, now time.Time) (*Exposure, error) {
	versions, err := db.RunPolicyVersions(ctx, runID)
	if err != nil {
		return nil, err
	}
	if len(versions) == 0 {
		return nil, fmt.Errorf("exposure report: no decisions with run id %q", runID)
	}
	blocked, err := db.ExposureBlocked(ctx, runID, withUsers)
	if err != nil {
		return nil, err
	}
	fields, err := db.ExposureFields(ctx, runID, withUsers)
	if err != nil {
		return nil, err
	}
	users, err := db.ExposureUserCounts(ctx, runID, withUsers)
	if err != nil {
		return nil, err
	}
	e := &Exposure{RunID: runID, GeneratedAt: now.UTC().Truncate(time.Second), Database: db.Database,
		PolicyVersions: versions, Labels: map[string]string{}}
	byName := map[string]*ExposureDestination{}
	var order []string
	dest := func(name string) *ExposureDestination {
		if d := byName[name]; d != nil {
			return d
		}
		d := &ExposureDestination{Name: name, Blocked: []ExposureBlocked{}, Fields: []ExposureField{}}
		if pd := pol.Destinations[name]; pd != nil {
			d.Type, d.Purpose, d.Sale = pd.Type, pd.Purpose, pd.Sale
		}
		byName[name] = d
		order = append(order, name)
		return d
	}
	for _, name := range pol.Names {
		dest(name)
	}
	for _, g := range blocked {
		d := dest(g.Destination)
		d.Blocked = append(d.Blocked, ExposureBlocked{Reason: g.Key, Events: g.Events, Users: g.Users, First: g.First, Last: g.Last, UserKeys: g.UserKeys})
	}
	for _, g := range fields {
		d := dest(g.Destination)
		label := pol.Label(g.Key)
		e.Labels[g.Key] = label
		d.Fields = append(d.Fields, ExposureField{Path: g.Key, Label: label, Events: g.Events, Users: g.Users, First: g.First, Last: g.Last, UserKeys: g.UserKeys})
	}
	for _, u := range users {
		d := dest(u.Destination)
		d.Users, d.UserKeys = u.Users, u.UserKeys
	}
	for _, name := range order {
		e.Destinations = append(e.Destinations, *byName[name])
	}
	return e, nil
}

// WriteCSV writes one row per group: destination, kind (blocked or field), the reason or field
// path, its label, events, users, first and last event time, and the user keys (space-separated,
// with --users).
func (e *Exposure) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"destination", "kind", "reason_or_field", "label", "events", "users", "first", "last", "user_keys"})
	row := func(dest, kind, key, label string, events, users uint64, first, last time.Time, keys []string) {
		_ = cw.Write([]string{dest, kind, key, label, strconv.FormatUint(events, 10), strconv.FormatUint(users, 10),
			first.UTC().Format(time.RFC3339), last.UTC().Format(time.RFC3339), strings.Join(keys, " ")})
	}
	for _, d := range e.Destinations {
		for _, b := range d.Blocked {
			row(d.Name, "blocked", b.Reason, exposureReason(b.Reason), b.Events, b.Users, b.First, b.Last, b.UserKeys)
		}
		for _, f := range d.Fields {
			row(d.Name, "field", f.Path, f.Label, f.Events, f.Users, f.First, f.Last, f.UserKeys)
		}
	}
	cw.Flush()
	return cw.Error()
}

// exposureReasonText says why the fixed policy withholds an event, for the privacy team.
var exposureReasonText = map[string]string{
	"no_consent": "no consent given",
	"opted_out":  "the user opted out",
	"withdrawn":  "consent withdrawn",
	"gpc":        "Global Privacy Control signal",
	"sensitive":  "sensitive page",
	"erased":     "the user was erased",
}

func exposureReason(r string) string {
	if t := exposureReasonText[r]; t != "" {
		return t
	}
	return r
}
