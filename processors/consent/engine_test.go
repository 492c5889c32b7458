package consent

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/schemas"
)

var decidedAt = time.Date(2026, 11, 23, 10, 0, 1, 0, time.UTC)

func TestDecideRules(t *testing.T) {
	pol := loadPolicy(t)
	optOutDefault := loadPolicy(t, "default: {model: opt_in}", "default: {model: opt_out}")

	withConsent := func(c map[string]bool) func(*schemas.Event) {
		return func(ev *schemas.Event) { ev.Consent = c }
	}
	in := func(j string, c map[string]bool) func(*schemas.Event) {
		return func(ev *schemas.Event) { ev.Jurisdiction, ev.Consent = j, c }
	}
	stored := func(c map[string]bool) *State { return &State{Consent: c, NoticeVersion: "v3"} }

	tests := []struct {
		name         string
		alt          bool // decide with optOutDefault instead of pol
		mutate       func(*schemas.Event)
		st           *State
		dest         string
		outcome      string
		reason       string
		jurisdiction string // expected recorded jurisdiction; "" means "EU"
	}{
		// Rule 4 under opt_in (EU).
		{name: "EU explicit true", mutate: withConsent(allTrue()), dest: "meta", outcome: Forwarded, reason: ReasonConsented},
		{name: "EU no consent object", dest: "meta", outcome: Blocked, reason: ReasonNoConsent},
		{name: "EU explicit false", mutate: withConsent(map[string]bool{"marketing": false}), dest: "meta", outcome: Blocked, reason: ReasonNoConsent},
		{name: "EU purpose missing from consent", mutate: withConsent(map[string]bool{"analytics": true}), dest: "meta", outcome: Blocked, reason: ReasonNoConsent},
		{name: "EU analytics granted alone", mutate: withConsent(map[string]bool{"analytics": true}), dest: "ga4", outcome: Forwarded, reason: ReasonConsented},
		// Rule 4 under opt_out (US-CA).
		{name: "US-CA no consent object", mutate: in("US-CA", nil), dest: "meta", outcome: Forwarded, reason: ReasonConsented, jurisdiction: "US-CA"},
		{name: "US-CA explicit true", mutate: in("US-CA", allTrue()), dest: "meta", outcome: Forwarded, reason: ReasonConsented, jurisdiction: "US-CA"},
		{name: "US-CA explicit false", mutate: in("US-CA", map[string]bool{"marketing": false}), dest: "meta", outcome: Blocked, reason: ReasonOptedOut, jurisdiction: "US-CA"},
		{name: "US-CA purpose missing", mutate: in("US-CA", map[string]bool{"analytics": false}), dest: "meta", outcome: Forwarded, reason: ReasonConsented, jurisdiction: "US-CA"},
		{name: "US-CA analytics false", mutate: in("US-CA", map[string]bool{"analytics": false}), dest: "ga4", outcome: Blocked, reason: ReasonOptedOut, jurisdiction: "US-CA"},
		// Default and unknown jurisdictions.
		{name: "empty jurisdiction is default", mutate: in("", nil), dest: "meta", outcome: Blocked, reason: ReasonNoConsent, jurisdiction: "default"},
		{name: "default explicit true", mutate: in("", allTrue()), dest: "meta", outcome: Forwarded, reason: ReasonConsented, jurisdiction: "default"},
		{name: "unknown jurisdiction takes default opt_in", mutate: in("BR", nil), dest: "meta", outcome: Blocked, reason: ReasonNoConsent, jurisdiction: "BR"},
		{name: "unknown jurisdiction takes default opt_out", alt: true, mutate: in("BR", nil), dest: "meta", outcome: Forwarded, reason: ReasonConsented, jurisdiction: "BR"},
		{name: "unknown jurisdiction opt_out default false", alt: true, mutate: in("BR", map[string]bool{"marketing": false}), dest: "meta", outcome: Blocked, reason: ReasonOptedOut, jurisdiction: "BR"},
		{name: "known jurisdiction keeps its model under opt_out default", alt: true, mutate: in("EU", nil), dest: "meta", outcome: Blocked, reason: ReasonNoConsent},
		// Rule 2: necessary.
		{name: "necessary without consent", dest: "ops", outcome: Forwarded, reason: ReasonNecessary},
		{name: "necessary despite event false", mutate: withConsent(map[string]bool{"necessary": false}), dest: "ops", outcome: Forwarded, reason: ReasonNecessary},
		{name: "necessary despite stored false", st: stored(map[string]bool{"necessary": false}), dest: "ops", outcome: Forwarded, reason: ReasonNecessary},
		{name: "necessary despite GPC", mutate: func(ev *schemas.Event) { ev.GPC = true }, dest: "ops", outcome: Forwarded, reason: ReasonNecessary},
		// Rule 1: erasure beats everything.
		{name: "erasure beats necessary", st: &State{Erased: true}, dest: "ops", outcome: Blocked, reason: ReasonErased},
		{name: "erasure beats consent", mutate: withConsent(allTrue()), st: &State{Erased: true, Consent: allTrue()}, dest: "meta", outcome: Blocked, reason: ReasonErased},
		{name: "erasure under opt_out", mutate: in("US-CA", nil), st: &State{Erased: true}, dest: "ga4", outcome: Blocked, reason: ReasonErased, jurisdiction: "US-CA"},
		// Rule 3: withdrawal; stored and event consent intersect.
		{name: "stored false beats event true", mutate: withConsent(allTrue()), st: stored(map[string]bool{"marketing": false}), dest: "meta", outcome: Blocked, reason: ReasonWithdrawn},
		{name: "stored false beats opt_out default", mutate: in("US-CA", nil), st: stored(map[string]bool{"marketing": false}), dest: "meta", outcome: Blocked, reason: ReasonWithdrawn, jurisdiction: "US-CA"},
		{name: "stored false only for its purpose", mutate: withConsent(allTrue()), st: stored(map[string]bool{"analytics": false}), dest: "meta", outcome: Forwarded, reason: ReasonConsented},
		{name: "stored false analytics blocks ga4", mutate: withConsent(allTrue()), st: stored(map[string]bool{"analytics": false}), dest: "ga4", outcome: Blocked, reason: ReasonWithdrawn},
		{name: "stored true does not grant in opt_in", st: stored(allTrue()), dest: "meta", outcome: Blocked, reason: ReasonNoConsent},
		{name: "stored true does not beat event false in opt_out", mutate: in("US-CA", map[string]bool{"marketing": false}), st: stored(allTrue()), dest: "meta", outcome: Blocked, reason: ReasonOptedOut, jurisdiction: "US-CA"},
		{name: "stored true with event true", mutate: withConsent(allTrue()), st: stored(allTrue()), dest: "meta", outcome: Forwarded, reason: ReasonConsented},
		{name: "empty state is no state", mutate: withConsent(allTrue()), st: &State{}, dest: "meta", outcome: Forwarded, reason: ReasonConsented},
		// Rule 5: GPC blocks sale destinations only, in every jurisdiction.
		{name: "GPC blocks sale EU", mutate: func(ev *schemas.Event) { ev.Consent, ev.GPC = allTrue(), true }, dest: "meta", outcome: Blocked, reason: ReasonGPC},
		{name: "GPC blocks sale US-CA", mutate: func(ev *schemas.Event) { ev.Jurisdiction, ev.GPC = "US-CA", true }, dest: "tiktok", outcome: Blocked, reason: ReasonGPC, jurisdiction: "US-CA"},
		{name: "GPC spares non-sale marketing", mutate: func(ev *schemas.Event) { ev.Consent, ev.GPC = allTrue(), true }, dest: "gads", outcome: Forwarded, reason: ReasonConsented},
		{name: "GPC spares non-sale analytics", mutate: func(ev *schemas.Event) { ev.Consent, ev.GPC = allTrue(), true }, dest: "ga4", outcome: Forwarded, reason: ReasonConsented},
		{name: "no consent reported before GPC", mutate: func(ev *schemas.Event) { ev.GPC = true }, dest: "meta", outcome: Blocked, reason: ReasonNoConsent},
		{name: "withdrawal reported before GPC", mutate: func(ev *schemas.Event) { ev.Consent, ev.GPC = allTrue(), true }, st: stored(map[string]bool{"marketing": false}), dest: "meta", outcome: Blocked, reason: ReasonWithdrawn},
		// Rule 6: sensitive data, marketing only.
		{name: "sensitive page blocks marketing", mutate: sensitivePage(allTrue()), dest: "meta", outcome: Blocked, reason: ReasonSensitive},
		{name: "sensitive page blocks non-sale marketing", mutate: sensitivePage(allTrue()), dest: "gads", outcome: Blocked, reason: ReasonSensitive},
		{name: "sensitive page spares analytics", mutate: sensitivePage(allTrue()), dest: "ga4", outcome: Forwarded, reason: ReasonConsented},
		{name: "sensitive page spares necessary", mutate: sensitivePage(nil), dest: "ops", outcome: Forwarded, reason: ReasonNecessary},
		{name: "sensitive under opt_out", mutate: func(ev *schemas.Event) { sensitivePage(nil)(ev); ev.Jurisdiction = "US-CA" }, dest: "meta", outcome: Blocked, reason: ReasonSensitive, jurisdiction: "US-CA"},
		{name: "GPC reported before sensitive", mutate: func(ev *schemas.Event) { sensitivePage(allTrue())(ev); ev.GPC = true }, dest: "meta", outcome: Blocked, reason: ReasonGPC},
		{name: "sensitive rule matches decoded JSON string", mutate: property("category", `"adult"`), dest: "gads", outcome: Blocked, reason: ReasonSensitive},
		{name: "sensitive rule matches escaped JSON string", mutate: property("category", `"\u0061dult"`), dest: "gads", outcome: Blocked, reason: ReasonSensitive},
		{name: "sensitive rule anchored", mutate: property("category", `"adulthood"`), dest: "gads", outcome: Forwarded, reason: ReasonConsented},
		{name: "sensitive rule on absent field", mutate: withConsent(allTrue()), dest: "gads", outcome: Forwarded, reason: ReasonConsented},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := baseEvent()
			if tc.mutate != nil {
				tc.mutate(ev)
			}
			p := pol
			if tc.alt {
				p = optOutDefault
			}
			o := outcomeFor(t, Decide(ev, tc.st, p, decidedAt, ""), tc.dest)
			require.Equal(t, tc.outcome, o.Decision.Outcome)
			require.Equal(t, tc.reason, o.Decision.Reason)
			want := tc.jurisdiction
			if want == "" {
				want = "EU"
			}
			require.Equal(t, want, o.Decision.Jurisdiction)
			if tc.outcome == Forwarded {
				require.NotNil(t, o.Filtered)
				require.Equal(t, want, o.Filtered.Jurisdiction)
			} else {
				require.Nil(t, o.Filtered)
			}
		})
	}
}

func sensitivePage(c map[string]bool) func(*schemas.Event) {
	return func(ev *schemas.Event) {
		ev.Consent = c
		ev.Context["page_url"] = `"https://shop.example/Pharmacy/checkout"`
	}
}

func property(name, jsonText string) func(*schemas.Event) {
	return func(ev *schemas.Event) {
		ev.Consent = allTrue()
		ev.Properties[name] = jsonText
	}
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

func TestDecideFields(t *testing.T) {
	pol := loadPolicy(t)
	ev := baseEvent()
	ev.Consent = allTrue()
	ev.Properties["gclid"] = `"Cj0KCQ"`
	present := []string{"anonymous_id", "context.ip", "context.page_url", "context.user_agent", "properties.currency",
		"properties.email", "properties.fbclid", "properties.gclid", "properties.order_value", "properties.phone", "user_id"}

	tests := []struct {
		dest     string
		sent     []string
		stripped []string
		fields   map[string]string
	}{
		{
			dest:     "ga4",
			sent:     []string{"context.page_url", "properties.currency", "properties.order_value"},
			stripped: []string{"anonymous_id", "context.ip", "context.user_agent", "properties.email", "properties.fbclid", "properties.gclid", "properties.phone", "user_id"},
			fields: map[string]string{
				"context.page_url":       `"https://shop.example/checkout"`,
				"properties.currency":    `"EUR"`,
				"properties.order_value": `149.0`,
			},
		},
		{
			dest:     "meta",
			sent:     []string{"context.page_url", "context.user_agent", "properties.currency", "properties.email", "properties.fbclid", "properties.order_value", "properties.phone"},
			stripped: []string{"anonymous_id", "context.ip", "properties.gclid", "user_id"},
			fields: map[string]string{
				"context.page_url":       `"https://shop.example/checkout"`,
				"context.user_agent":     `"Mozilla/5.0"`,
				"properties.currency":    `"EUR"`,
				"properties.order_value": `149.0`,
				"properties.email":       sha("ann@example.com"),
				"properties.phone":       sha("16505551212"),
				"properties.fbclid":      `"IwAR0AbC"`, // case-sensitive: passed through untouched
			},
		},
		{
			dest:     "ops",
			sent:     []string{"context.page_url"},
			stripped: []string{"anonymous_id", "context.ip", "context.user_agent", "properties.currency", "properties.email", "properties.fbclid", "properties.gclid", "properties.order_value", "properties.phone", "user_id"},
			fields:   map[string]string{"context.page_url": `"https://shop.example/checkout"`},
		},
		{
			dest:     "tiktok",
			sent:     []string{"context.page_url", "properties.email", "properties.phone", "user_id"},
			stripped: []string{"anonymous_id", "context.ip", "context.user_agent", "properties.currency", "properties.fbclid", "properties.gclid", "properties.order_value"},
			fields: map[string]string{
				"context.page_url": `"https://shop.example/checkout"`,
				"properties.email": sha("ann@example.com"),
				"properties.phone": sha("+16505551212"),
				"user_id":          sha("u-42"),
			},
		},
		{
			dest:     "gads",
			sent:     []string{"anonymous_id", "properties.email", "properties.gclid", "properties.order_value", "properties.phone"},
			stripped: []string{"context.ip", "context.page_url", "context.user_agent", "properties.currency", "properties.fbclid", "user_id"},
			fields: map[string]string{
				"anonymous_id":           `"a-7f3"`,
				"properties.email":       sha("ann@example.com"),
				"properties.gclid":       `"Cj0KCQ"`,
				"properties.order_value": `149.0`,
				"properties.phone":       sha("+16505551212"),
			},
		},
	}
	outs := Decide(ev, nil, pol, decidedAt, "")
	for _, tc := range tests {
		t.Run(tc.dest, func(t *testing.T) {
			o := outcomeFor(t, outs, tc.dest)
			require.Equal(t, Forwarded, o.Decision.Outcome)
			require.Equal(t, tc.sent, o.Decision.FieldsSent)
			require.Equal(t, tc.stripped, o.Decision.FieldsStripped)
			require.Equal(t, tc.fields, o.Filtered.Fields)
		})
	}

	t.Run("blocked strips every present field", func(t *testing.T) {
		blocked := baseEvent()
		blocked.Properties["gclid"] = `"Cj0KCQ"`
		for _, o := range Decide(blocked, &State{Erased: true}, pol, decidedAt, "") {
			require.Equal(t, Blocked, o.Decision.Outcome)
			require.NotNil(t, o.Decision.FieldsSent)
			require.Empty(t, o.Decision.FieldsSent)
			require.Equal(t, present, o.Decision.FieldsStripped)
		}
	})

	t.Run("empty identifiers are absent", func(t *testing.T) {
		anon := baseEvent()
		anon.Consent = allTrue()
		anon.UserID = ""
		o := outcomeFor(t, Decide(anon, nil, pol, decidedAt, ""), "tiktok")
		require.Equal(t, []string{"context.page_url", "properties.email", "properties.phone"}, o.Decision.FieldsSent)
		require.NotContains(t, o.Filtered.Fields, "user_id")
		require.Equal(t, "a-7f3", o.Filtered.UserKey)
	})

	t.Run("listed fields the event lacks are neither sent nor stripped", func(t *testing.T) {
		bare := &schemas.Event{EventID: "e", Event: "page", AnonymousID: "a", Consent: allTrue()}
		o := outcomeFor(t, Decide(bare, nil, pol, decidedAt, ""), "ga4")
		require.Equal(t, []string{}, o.Decision.FieldsSent)
		require.Equal(t, []string{"anonymous_id"}, o.Decision.FieldsStripped)
		require.Empty(t, o.Filtered.Fields)
	})

	t.Run("identifier JSON is escaped", func(t *testing.T) {
		odd := baseEvent()
		odd.Consent = allTrue()
		odd.AnonymousID = "a\"b\\c\n"
		o := outcomeFor(t, Decide(odd, nil, pol, decidedAt, ""), "gads")
		require.Equal(t, `"a\"b\\c\n"`, o.Filtered.Fields["anonymous_id"])
	})
}

func TestDecideRecord(t *testing.T) {
	pol := loadPolicy(t)
	ev := baseEvent()
	ev.Consent = map[string]bool{"analytics": true, "marketing": true, "extra": true}
	ev.GPC = true
	st := &State{Consent: map[string]bool{"marketing": false}}

	outs := Decide(ev, st, pol, decidedAt, "run-7")
	require.Len(t, outs, len(pol.Names))
	for i, o := range outs {
		d := o.Decision
		require.Equal(t, pol.Names[i], d.Destination, "outcomes follow pol.Names")
		require.Equal(t, DecisionID(ev.EventID, d.Destination, "run-7"), d.DecisionID)
		require.Len(t, d.DecisionID, 32)
		require.Equal(t, ev.EventID, d.EventID)
		require.Equal(t, "u-42", d.UserKey)
		require.Equal(t, "purchase", d.EventName)
		require.Equal(t, ev.TimestampMs, d.EventTimeMs)
		require.Equal(t, decidedAt.UnixMilli(), d.DecidedMs)
		require.Equal(t, pol.Destinations[d.Destination].Purpose, d.Purpose)
		require.Equal(t, "EU", d.Jurisdiction)
		require.True(t, d.GPC)
		require.Equal(t, "2026-11-01", d.PolicyVersion)
		require.Equal(t, "run-7", d.RunID)
	}

	ga4 := outcomeFor(t, outs, "ga4")
	require.Equal(t, Forwarded, ga4.Decision.Outcome)
	f := ga4.Filtered
	require.Equal(t, schemas.FilteredEvent{
		EventID:       ev.EventID,
		DecisionID:    ga4.Decision.DecisionID,
		Destination:   "ga4",
		Event:         "purchase",
		TimestampMs:   ev.TimestampMs,
		DecidedMs:     decidedAt.UnixMilli(),
		UserKey:       "u-42",
		Purpose:       "analytics",
		Jurisdiction:  "EU",
		GPC:           true,
		Consent:       map[string]bool{"necessary": true, "analytics": true, "marketing": false},
		Fields:        f.Fields,
		PolicyVersion: "2026-11-01",
		RunID:         "run-7",
		VendorConsent: map[string]bool{"ad_user_data": false, "ad_personalization": false, "limited_data_use": false},
	}, *f, "effective consent: stored false withdraws marketing, unknown purposes are dropped")

	t.Run("effective consent under opt_out", func(t *testing.T) {
		ca := baseEvent()
		ca.Jurisdiction = "US-CA"
		ca.Consent = map[string]bool{"analytics": false}
		o := outcomeFor(t, Decide(ca, nil, pol, decidedAt, ""), "meta")
		require.Equal(t, map[string]bool{"necessary": true, "analytics": false, "marketing": true}, o.Filtered.Consent)
	})

	t.Run("each filtered event owns its maps", func(t *testing.T) {
		all := baseEvent()
		all.Consent = allTrue()
		o := Decide(all, nil, pol, decidedAt, "")
		a, b := outcomeFor(t, o, "ga4").Filtered, outcomeFor(t, o, "gads").Filtered
		a.Consent["marketing"] = false
		require.True(t, b.Consent["marketing"])
	})

	t.Run("decision ids are deterministic", func(t *testing.T) {
		again := Decide(ev, st, pol, decidedAt.Add(time.Hour), "run-7")
		for i := range outs {
			require.Equal(t, outs[i].Decision.DecisionID, again[i].Decision.DecisionID)
		}
		live := Decide(ev, st, pol, decidedAt, "")
		require.NotEqual(t, outs[0].Decision.DecisionID, live[0].Decision.DecisionID, "a replay run gets its own ids")
		require.NotEqual(t, live[0].Decision.DecisionID, live[1].Decision.DecisionID, "each destination gets its own id")
		require.NotEqual(t, DecisionID("a|b", "c", ""), DecisionID("a", "b|c", ""), "components cannot run into each other")
		// Golden value computed independently: sha256(uvarint(4) "ev-1" uvarint(4) "meta" uvarint(0))[:16] as hex.
		require.Equal(t, "7f5e2c8b11016623fd0da50d07367890", DecisionID("ev-1", "meta", ""), "ids must never change across releases")
	})

	t.Run("nil inputs", func(t *testing.T) {
		require.Nil(t, Decide(nil, nil, pol, decidedAt, ""))
		require.Nil(t, Decide(ev, nil, nil, decidedAt, ""))
	})
}

func BenchmarkDecide(b *testing.B) {
	pol := loadPolicy(b)
	ev := baseEvent()
	ev.Consent = allTrue()
	st := &State{Consent: map[string]bool{"analytics": true, "marketing": true}}
	b.ReportAllocs()
	for b.Loop() {
		if len(Decide(ev, st, pol, decidedAt, "")) != len(pol.Names) {
			b.Fatal("missing outcomes")
		}
	}
}
