package report

import (
	"bytes"
	"encoding/csv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/config"
)

func TestProcessingRecordFromDemoPolicy(t *testing.T) {
	cfg, err := config.Load("../deploy/demo/config.yaml")
	require.NoError(t, err)
	p := BuildProcessing(cfg, time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC))
	require.Equal(t, "2026-11-01", p.PolicyVersion)
	require.Equal(t, []ProcessingModel{{"EU", "opt_in"}, {"US-CA", "opt_out"}, {"default", "opt_in"}}, p.Jurisdictions)
	require.Equal(t, []ProcessingSensitive{{"health", "context.page_url", "(?i)/(pharmacy|clinic|health|diagnos)"}}, p.Sensitive)
	require.Equal(t, "90 days", p.Retention.AnonymizeAfter)
	require.Equal(t, "never", p.Retention.DropAfter)
	require.Len(t, p.Destinations, 3)
	meta := p.Destinations[1]
	require.Equal(t, ProcessingDestination{Name: "meta", Type: "meta_capi", Purpose: "marketing", LegalBasis: BasisConsent, Sale: true,
		Fields:         []string{"context.page_url", "context.user_agent", "properties.order_value", "properties.currency", "properties.email", "properties.phone", "properties.fbclid"},
		HashedFields:   []string{"properties.email", "properties.phone"},
		SensitiveRules: []string{"health"}}, meta)
	require.Equal(t, BasisNecessary, p.Destinations[2].LegalBasis)
	require.Empty(t, p.Destinations[0].SensitiveRules, "sensitive rules bind marketing destinations only")

	var c bytes.Buffer
	require.NoError(t, p.WriteCSV(&c))
	rows, err := csv.NewReader(&c).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 4)
	require.Equal(t, []string{"meta", "meta_capi", "marketing", "consent", "true"}, rows[2][:5])
	require.Equal(t, "properties.email properties.phone", rows[2][6])

	var h bytes.Buffer
	require.NoError(t, p.WriteHTML(&h))
	requireSelfContained(t, h.String())
	require.Contains(t, h.String(), "Record of processing activities")
}
