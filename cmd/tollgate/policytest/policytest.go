// Package policytest runs a policy's test cases: YAML files that each hold one event, optionally
// the user's recorded consent, and the decision expected per destination. Every case goes through
// the consent engine itself (consent.Decide), the one the processor runs, so a passing case
// proves what the pipeline will do with that event under that policy.
package policytest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tollgate-dev/tollgate/ingest"
	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/processors/consent"
	"github.com/tollgate-dev/tollgate/schemas"
)

// Expect is the decision a case expects for one destination. Fields, when given, is the exact set
// of field paths sent. Held, when given, says whether the policy's hold keeps the event for the
// user's choice (consent.Pending); Outcome and Reason are then what it is decided as when no
// choice arrives in the window.
type Expect struct {
	Outcome string    `yaml:"outcome"`
	Reason  string    `yaml:"reason"`
	Fields  *[]string `yaml:"fields"`
	Held    *bool     `yaml:"held"`
}

// Case is one test case file.
type Case struct {
	File            string
	Event           *schemas.Event
	RecordedConsent map[string]bool
	Erased          bool
	Expect          map[string]Expect
	expectOrder     []string
}

// Result is one case's run: its failures, one line each (none: passed).
type Result struct {
	File     string
	Failures []string
}

// Summary counts a run.
type Summary struct {
	Passed, Failed int
	Results        []Result
}

// now is the decision time of every case: fixed, so runs are reproducible.
var now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Load reads every *.yaml file of dir (sorted) as a case, checking each against pol. The first
// bad file stops it with an error naming the file, line and field.
func Load(dir string, pol *policy.Policy) ([]*Case, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("policy test %s: %w", dir, err)
	}
	if len(files) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("policy test: %w", err)
		}
		return nil, fmt.Errorf("policy test: no *.yaml case files in %s", dir)
	}
	sort.Strings(files)
	out := make([]*Case, 0, len(files))
	for _, f := range files {
		c, err := LoadCase(f, pol)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// caseError names the file, the line and the field of a problem in a case file.
func caseError(file string, n *yaml.Node, field, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return fmt.Errorf("%s:%d: %s: %s", file, line, field, fmt.Sprintf(format, args...))
}

// LoadCase reads and checks one case file.
func LoadCase(file string, pol *policy.Policy) (*Case, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("policy test: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, policy.CleanYAMLError(err))
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, caseError(file, &doc, "(top level)", "must be a mapping with event and expect")
	}
	root := doc.Content[0]
	c := &Case{File: file, Expect: map[string]Expect{}}
	var eventNode, expectNode *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "event":
			eventNode = v
		case "expect":
			expectNode = v
		case "recorded_consent":
			if err := v.Decode(&c.RecordedConsent); err != nil {
				return nil, caseError(file, v, "recorded_consent", "must map purposes to true or false")
			}
			for p := range c.RecordedConsent {
				if !slices.Contains(pol.Purposes, p) {
					return nil, caseError(file, v, "recorded_consent."+p, "not a purpose of the policy (%s)", strings.Join(pol.Purposes, ", "))
				}
			}
		case "erased":
			if err := v.Decode(&c.Erased); err != nil {
				return nil, caseError(file, v, "erased", "must be true or false")
			}
		case "description", "name":
		default:
			return nil, caseError(file, k, k.Value, "unknown key (use event, recorded_consent, erased, expect)")
		}
	}
	if eventNode == nil {
		return nil, caseError(file, root, "event", "is required")
	}
	if c.Event, err = decodeEvent(eventNode); err != nil {
		return nil, caseError(file, eventNode, "event", "%v", err)
	}
	if expectNode == nil || expectNode.Kind != yaml.MappingNode || len(expectNode.Content) == 0 {
		return nil, caseError(file, orNode(expectNode, root), "expect", "is required: a mapping of destination to {outcome, reason, fields, held}")
	}
	for i := 0; i+1 < len(expectNode.Content); i += 2 {
		k, v := expectNode.Content[i], expectNode.Content[i+1]
		if pol.Destinations[k.Value] == nil {
			return nil, caseError(file, k, "expect."+k.Value, "not a destination of the policy (%s)", strings.Join(pol.Names, ", "))
		}
		var e Expect
		if err := checkKeys(v, "outcome", "reason", "fields", "held"); err != nil {
			return nil, caseError(file, v, "expect."+k.Value, "%v", err)
		}
		if err := v.Decode(&e); err != nil {
			return nil, caseError(file, v, "expect."+k.Value, "%v", policy.CleanYAMLError(err))
		}
		if e.Outcome != consent.Forwarded && e.Outcome != consent.Blocked {
			return nil, caseError(file, lineOf(v, "outcome"), "expect."+k.Value+".outcome", "%q: use forwarded or blocked", e.Outcome)
		}
		if !slices.Contains(reasons, e.Reason) {
			return nil, caseError(file, lineOf(v, "reason"), "expect."+k.Value+".reason", "%q: use one of %s", e.Reason, strings.Join(reasons, ", "))
		}
		c.Expect[k.Value] = e
		c.expectOrder = append(c.expectOrder, k.Value)
	}
	return c, nil
}

var reasons = []string{consent.ReasonConsented, consent.ReasonNecessary, consent.ReasonNoConsent, consent.ReasonOptedOut,
	consent.ReasonWithdrawn, consent.ReasonGPC, consent.ReasonSensitive, consent.ReasonErased}

func orNode(n, fallback *yaml.Node) *yaml.Node {
	if n != nil {
		return n
	}
	return fallback
}

func checkKeys(m *yaml.Node, allowed ...string) error {
	if m.Kind != yaml.MappingNode {
		return errors.New("must be a mapping")
	}
	for i := 0; i < len(m.Content); i += 2 {
		if !slices.Contains(allowed, m.Content[i].Value) {
			return fmt.Errorf("unknown key %q (use %s)", m.Content[i].Value, strings.Join(allowed, ", "))
		}
	}
	return nil
}

func lineOf(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return m
}

// decodeEvent turns the case's event (YAML) into JSON and validates it as ingest does.
func decodeEvent(n *yaml.Node) (*schemas.Event, error) {
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("not representable as JSON: %w", err)
	}
	return DecodeJSON(b)
}

// DecodeJSON validates one native event's JSON as ingest does, with a fixed receive time.
func DecodeJSON(b []byte) (*schemas.Event, error) {
	ev, err := ingest.DecodeEvent(bytes.TrimSpace(b), now)
	if err != nil {
		return nil, err
	}
	if ev.EventID == "" {
		ev.EventID = "policy-test"
	}
	return ev, nil
}

// State is the recorded state a case describes (nil when it records nothing).
func (c *Case) State() *consent.State {
	if c.RecordedConsent == nil && !c.Erased {
		return nil
	}
	return &consent.State{Consent: c.RecordedConsent, Erased: c.Erased}
}

// Run decides the case with the engine and compares every expected destination.
func (c *Case) Run(pol *policy.Policy) Result {
	res := Result{File: c.File}
	got := map[string]schemas.Decision{}
	for _, o := range consent.Decide(c.Event, c.State(), pol, now, "") {
		got[o.Decision.Destination] = o.Decision
	}
	pending := consent.Pending(c.Event, c.State(), pol)
	for _, dest := range c.expectOrder {
		want, have := c.Expect[dest], got[dest]
		if have.Outcome != want.Outcome || have.Reason != want.Reason {
			res.Failures = append(res.Failures, fmt.Sprintf("%s: want %s/%s, got %s/%s", dest, want.Outcome, want.Reason, have.Outcome, have.Reason))
			continue
		}
		if held := slices.Contains(pending, dest); want.Held != nil && *want.Held != held {
			res.Failures = append(res.Failures, fmt.Sprintf("%s: want held %t, got %t", dest, *want.Held, held))
		}
		if want.Fields != nil {
			w := slices.Clone(*want.Fields)
			slices.Sort(w)
			g := slices.Clone(have.FieldsSent)
			slices.Sort(g)
			if !slices.Equal(w, g) {
				res.Failures = append(res.Failures, fmt.Sprintf("%s: want fields [%s], got [%s]", dest, strings.Join(w, " "), strings.Join(g, " ")))
			}
		}
	}
	return res
}

// RunDir loads and runs every case of dir, printing a line per failure and the closing
// "N passed, M failed". The error is for files that cannot be loaded; failures are in Summary.
func RunDir(dir string, pol *policy.Policy, out io.Writer) (Summary, error) {
	cases, err := Load(dir, pol)
	if err != nil {
		return Summary{}, err
	}
	var s Summary
	for _, c := range cases {
		r := c.Run(pol)
		s.Results = append(s.Results, r)
		if len(r.Failures) == 0 {
			s.Passed++
			continue
		}
		s.Failed++
		for _, f := range r.Failures {
			fmt.Fprintf(out, "FAIL %s: %s\n", filepath.Base(c.File), f)
		}
	}
	fmt.Fprintf(out, "%d passed, %d failed\n", s.Passed, s.Failed)
	return s, nil
}
