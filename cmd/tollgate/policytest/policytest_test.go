package policytest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/policy"
)

func demoPolicy(t *testing.T) *policy.Policy {
	t.Helper()
	pol, err := policy.Load("../../../deploy/demo/policy.yaml")
	require.NoError(t, err)
	return pol
}

// A mistake in a case file is reported with the file, the line and the field, never run.
func TestBadCaseFiles(t *testing.T) {
	pol := demoPolicy(t)
	for _, tc := range []struct{ name, text, want string }{
		{"no event", "expect:\n  ga4: {outcome: blocked, reason: no_consent}\n", ":1: event: is required"},
		{"bad event", "event: {event: page}\nexpect:\n  ga4: {outcome: blocked, reason: no_consent}\n", `:1: event: field "user_id" or "anonymous_id" is required`},
		{"unknown destination", "event: {event: page, user_id: u}\nexpect:\n  tiktok: {outcome: blocked, reason: no_consent}\n", ":3: expect.tiktok: not a destination of the policy"},
		{"bad outcome", "event: {event: page, user_id: u}\nexpect:\n  ga4:\n    outcome: dropped\n    reason: no_consent\n", ":4: expect.ga4.outcome: \"dropped\""},
		{"unknown key", "event: {event: page, user_id: u}\nconsent: {}\nexpect:\n  ga4: {outcome: blocked, reason: no_consent}\n", ":2: consent: unknown key"},
		{"bad purpose", "event: {event: page, user_id: u}\nrecorded_consent: {ads: false}\nexpect:\n  ga4: {outcome: blocked, reason: no_consent}\n", ":2: recorded_consent.ads: not a purpose"},
		{"no expect", "event: {event: page, user_id: u}\n", ":1: expect: is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "case.yaml")
			require.NoError(t, os.WriteFile(f, []byte(tc.text), 0o600))
			_, err := LoadCase(f, pol)
			require.Error(t, err)
			require.Contains(t, err.Error(), f+tc.want)
		})
	}
}

func TestEmptyDirIsAnError(t *testing.T) {
	_, err := Load(t.TempDir(), demoPolicy(t))
	require.ErrorContains(t, err, "no *.yaml case files")
}

// A case's held: says whether the policy's hold keeps the event for the destination; a wrong
// one fails with both sides named, and it is checked only where given.
func TestHeldExpectation(t *testing.T) {
	pol := demoPolicy(t)
	require.True(t, pol.Holds(), "the demo policy holds")
	f := filepath.Join(t.TempDir(), "case.yaml")
	require.NoError(t, os.WriteFile(f, []byte("event: {event: page, anonymous_id: a, jurisdiction: EU}\nexpect:\n"+
		"  ga4: {outcome: blocked, reason: no_consent, held: false}\n"+
		"  meta: {outcome: blocked, reason: no_consent}\n"+
		"  ops: {outcome: forwarded, reason: necessary, held: true}\n"), 0o600))
	c, err := LoadCase(f, pol)
	require.NoError(t, err)
	require.Equal(t, []string{"ga4: want held false, got true", "ops: want held true, got false"}, c.Run(pol).Failures)
}
