package main

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/audit"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2026-11-01T00:00:00Z": time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		"24h":                  now.Add(-24 * time.Hour),
		"90m":                  now.Add(-90 * time.Minute),
		"7d":                   now.AddDate(0, 0, -7),
		"0d":                   now,
	} {
		got, err := parseSince(in, now)
		require.NoError(t, err, in)
		require.True(t, want.Equal(got), "%s: %s", in, got)
	}
	for _, bad := range []string{"", "yesterday", "-5h", "7 days", "2026-11-01"} {
		_, err := parseSince(bad, now)
		var u usageError
		require.True(t, errors.As(err, &u), "%q: %v", bad, err)
		require.Equal(t, 2, exitCode(err))
	}
}

func TestTableFormats(t *testing.T) {
	tb := table{header: []string{"destination", "reason", "count"}}
	tb.add("meta", "gpc", "1200")
	tb.add("ga4", "no_consent", "3")
	var b bytes.Buffer
	require.NoError(t, tb.writeText(&b))
	require.Equal(t, ""+
		"DESTINATION  REASON      COUNT\n"+
		"meta         gpc          1200\n"+
		"ga4          no_consent      3\n", b.String())
	b.Reset()
	tb.add("a,b", `say "x"`, "0")
	require.NoError(t, tb.writeCSV(&b))
	require.Equal(t, "destination,reason,count\nmeta,gpc,1200\nga4,no_consent,3\n\"a,b\",\"say \"\"x\"\"\",0\n", b.String())
	require.NoError(t, checkFormat("json"))
	require.Equal(t, 2, exitCode(checkFormat("xml")))
}

func TestProgressLine(t *testing.T) {
	p := &progress{label: "replay r1"}
	require.Equal(t, "replay r1: 250/1000 records (25.0%), 125 records/s\n", p.line(250, 1000, 2*time.Second))
	require.Equal(t, "replay r1: 0/0 records (100.0%), 0 records/s\n", p.line(0, 0, 0))
	p.tty = true
	require.Equal(t, "\rreplay r1: 1000/1000 records (100.0%), 500 records/s\x1b[K", p.line(1000, 1000, 2*time.Second))

	var b bytes.Buffer
	p = newProgress(&b, "replay r2") // not a terminal: a line per update, the last one always
	p.update(10, 100)
	p.update(20, 100) // within 5 s of the previous: skipped
	p.update(100, 100)
	p.done()
	require.Regexp(t, `^replay r2: 10/100 records \(10\.0%\), \d+ records/s\nreplay r2: 100/100 records \(100\.0%\), \d+ records/s\n$`, b.String())
}

// The summary's text form: aligned columns, numbers right-aligned, a total line per table.
func TestWriteSummaryText(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, writeSummaryText(&b, []audit.SummaryRow{
		{Destination: "ga4", Outcome: "forwarded", Reason: "consented", Count: 1200},
		{Destination: "meta", Outcome: "blocked", Reason: "no_consent", Count: 3},
		{Destination: "meta", Outcome: "blocked", Reason: "gpc", Count: 45},
	}, []audit.DeliverySummaryRow{{Destination: "ga4", Status: "delivered", Count: 10}, {Destination: "webhook-ops", Status: "retrying", Count: 2}}))
	require.Equal(t, ""+
		"Decisions (live traffic):\n"+
		"DESTINATION  OUTCOME    REASON      COUNT\n"+
		"ga4          forwarded  consented    1200\n"+
		"meta         blocked    no_consent      3\n"+
		"meta         blocked    gpc            45\n"+
		"total                                1248\n"+
		"\n"+
		"Delivery attempts:\n"+
		"DESTINATION  STATUS     ATTEMPTS\n"+
		"ga4          delivered        10\n"+
		"webhook-ops  retrying          2\n"+
		"total                         12\n", b.String())

	b.Reset()
	require.NoError(t, writeSummaryText(&b, nil, nil))
	require.Equal(t, ""+
		"Decisions (live traffic):\n"+
		"DESTINATION  OUTCOME  REASON  COUNT\n"+
		"total                             0\n"+
		"\n"+
		"Delivery attempts:\n"+
		"DESTINATION  STATUS  ATTEMPTS\n"+
		"total                       0\n", b.String())
}

// `audit user` shows how long each held event waited for the choice, and counts them.
func TestAuditUserHeldColumn(t *testing.T) {
	require.Equal(t, "-", held(0))
	require.Equal(t, "1.2 s", held(1234))
	require.Equal(t, "30.0 s", held(30_000))
	require.Equal(t, "10m0s", held(600_000))
	rows := []audit.UserReportRow{{UserDecision: audit.UserDecision{HeldMs: 2400}}, {}, {UserDecision: audit.UserDecision{HeldMs: 1}}}
	require.Equal(t, ", 2 held until the choice or the hold's window", heldSummary(rows))
	require.Empty(t, heldSummary(rows[1:2]))
}
