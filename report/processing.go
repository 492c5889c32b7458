package report

import (
	"encoding/csv"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/policy"
)

// Processing is the record of processing activities (GDPR Art. 30) as the policy defines it: what
// each destination receives, for which purpose, on what basis, and how long the audit trail keeps
// its evidence.
type Processing struct {
	PolicyFile    string                  `json:"policy_file"`
	PolicyVersion string                  `json:"policy_version"`
	GeneratedAt   time.Time               `json:"generated_at"`
	Purposes      []string                `json:"purposes"`
	Jurisdictions []ProcessingModel       `json:"jurisdictions"`
	Sensitive     []ProcessingSensitive   `json:"sensitive_rules"`
	Destinations  []ProcessingDestination `json:"destinations"`
	Retention     ProcessingRetention     `json:"retention"`
}

// ProcessingModel is one jurisdiction's consent model.
type ProcessingModel struct {
	Jurisdiction string `json:"jurisdiction"`
	Model        string `json:"model"`
}

// ProcessingSensitive is one sensitive-data rule: events matching it reach no marketing destination.
type ProcessingSensitive struct {
	Name    string `json:"name"`
	Field   string `json:"field"`
	Pattern string `json:"pattern"`
}

// ProcessingDestination is one recipient of personal data.
type ProcessingDestination struct {
	Name         string   `json:"destination"`
	Type         string   `json:"type"`
	Purpose      string   `json:"purpose"`
	LegalBasis   string   `json:"legal_basis"`
	Sale         bool     `json:"sale"`
	Fields       []string `json:"fields"`
	HashedFields []string `json:"hashed_fields"`
	// SensitiveRules lists the rules that keep events from this destination (marketing only).
	SensitiveRules []string `json:"sensitive_rules"`
}

// ProcessingRetention is how long the audit trail keeps personal data.
type ProcessingRetention struct {
	AnonymizeAfter string `json:"anonymize_after"` // user keys blanked after this; "never" when off
	DropAfter      string `json:"drop_after"`      // rows deleted after this; "never" when off
}

// BuildProcessing derives the record from the loaded config and its policy.
func BuildProcessing(cfg *config.Config, now time.Time) *Processing {
	pol := cfg.Policy
	p := &Processing{PolicyFile: pol.File, PolicyVersion: pol.Version, GeneratedAt: now.UTC().Truncate(time.Second),
		Purposes: slices.Clone(pol.Purposes), Jurisdictions: []ProcessingModel{}, Sensitive: []ProcessingSensitive{},
		Destinations: []ProcessingDestination{}}
	names := make([]string, 0, len(pol.Jurisdictions))
	for j := range pol.Jurisdictions {
		names = append(names, j)
	}
	slices.Sort(names)
	for _, j := range names {
		p.Jurisdictions = append(p.Jurisdictions, ProcessingModel{Jurisdiction: j, Model: pol.Jurisdictions[j].Model})
	}
	var rules []string
	for _, r := range pol.Sensitive {
		if r == nil {
			continue
		}
		p.Sensitive = append(p.Sensitive, ProcessingSensitive{Name: r.Name, Field: r.Field, Pattern: r.Pattern})
		rules = append(rules, r.Name)
	}
	for _, name := range pol.Names {
		d := pol.Destinations[name]
		if d == nil {
			continue
		}
		pd := ProcessingDestination{Name: name, Type: d.Type, Purpose: d.Purpose, LegalBasis: BasisConsent, Sale: d.Sale,
			Fields: slices.Clone(d.Fields), HashedFields: nonNilClone(d.Hash), SensitiveRules: []string{}}
		if d.Purpose == policy.Necessary {
			pd.LegalBasis = BasisNecessary
		}
		if d.Purpose == policy.Marketing {
			pd.SensitiveRules = append(pd.SensitiveRules, rules...)
		}
		p.Destinations = append(p.Destinations, pd)
	}
	p.Retention = ProcessingRetention{
		AnonymizeAfter: Age(cfg.ClickHouse.Retention.AnonymizeAfter),
		DropAfter:      Age(cfg.ClickHouse.Retention.DropAfter),
	}
	return p
}

func nonNilClone(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}

// Age prints a retention duration in days where it is whole days ("90 days"), "never" when off.
func Age(d time.Duration) string {
	if d <= 0 {
		return "never"
	}
	if d%(24*time.Hour) == 0 {
		n := int(d / (24 * time.Hour))
		if n == 1 {
			return "1 day"
		}
		return strconv.Itoa(n) + " days"
	}
	return d.String()
}

// WriteCSV writes one row per destination with the policy-wide columns repeated, so the file
// stands alone in a spreadsheet.
func (p *Processing) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	models := make([]string, len(p.Jurisdictions))
	for i, j := range p.Jurisdictions {
		models[i] = j.Jurisdiction + "=" + j.Model
	}
	sens := make([]string, len(p.Sensitive))
	for i, s := range p.Sensitive {
		sens[i] = s.Name + ": " + s.Field + " ~ " + s.Pattern
	}
	rows := [][]string{{"destination", "type", "purpose", "legal_basis", "sale", "fields", "hashed_fields",
		"jurisdiction_models", "sensitive_rules", "retention_anonymize_after", "retention_drop_after", "policy_version"}}
	for _, d := range p.Destinations {
		dsens := []string{}
		for _, s := range sens {
			if slices.ContainsFunc(d.SensitiveRules, func(n string) bool { return strings.HasPrefix(s, n+":") }) {
				dsens = append(dsens, s)
			}
		}
		rows = append(rows, []string{d.Name, d.Type, d.Purpose, d.LegalBasis, strconv.FormatBool(d.Sale),
			strings.Join(d.Fields, " "), strings.Join(d.HashedFields, " "), strings.Join(models, " "),
			strings.Join(dsens, "; "), p.Retention.AnonymizeAfter, p.Retention.DropAfter, p.PolicyVersion})
	}
	if err := cw.WriteAll(rows); err != nil {
		return err
	}
	return cw.Error()
}
