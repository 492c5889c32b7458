// Package policy loads and validates the policy file (docs/configuration.md, "Policy reference"): purposes, jurisdiction
// models, destinations with their field allowlists, Segment category mapping and sensitive-data
// rules. A Policy is immutable once loaded and safe to share between goroutines.
package policy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Consent models of a jurisdiction.
const (
	OptIn  = "opt_in"  // only an explicit true grants a purpose
	OptOut = "opt_out" // anything but an explicit false grants a purpose
)

// The purpose that is always allowed (docs/consent.md rule 2).
const Necessary = "necessary"

// The purpose that sensitive rules protect (docs/consent.md rule 8).
const Marketing = "marketing"

// USState returns the state of a `US-<state>` jurisdiction (US-CA → CA) and whether it is one.
// The consent engine and the adapters both read US state jurisdictions through it.
func USState(jurisdiction string) (string, bool) {
	state, ok := strings.CutPrefix(jurisdiction, "US-")
	return state, ok && state != ""
}

// DefaultJurisdiction is the jurisdiction of events that name none and whose request named none.
const DefaultJurisdiction = "default"

// Destination types: the one list of vendors tollgate delivers to. The policy accepts exactly
// these; sinks/registry has one adapter and internal/standin one stand-in per type, keyed by these
// constants, and a test in each fails when a type is missing there.
const (
	TypeGA4       = "ga4"
	TypeMetaCAPI  = "meta_capi"
	TypeTikTok    = "tiktok"
	TypeGoogleAds = "google_ads"
	TypeWebhook   = "webhook"
)

// DestinationTypes are the destination types a policy may name, in documentation order.
var DestinationTypes = []string{TypeGA4, TypeMetaCAPI, TypeTikTok, TypeGoogleAds, TypeWebhook}

// Policy is a loaded, validated policy file.
type Policy struct {
	Version           string                  `yaml:"version"`
	Purposes          []string                `yaml:"purposes"`
	Jurisdictions     map[string]Jurisdiction `yaml:"jurisdictions"`
	Destinations      map[string]*Destination `yaml:"destinations"`
	SegmentCategories map[string]string       `yaml:"segment_categories"`
	Sensitive         []*SensitiveRule        `yaml:"sensitive"`
	ConsentSources    ConsentSources          `yaml:"consent_sources"`
	// Labels name field paths in words for the HTML reports (labels.go); optional.
	Labels map[string]string `yaml:"labels"`
	// Hold holds events before the user's choice (hold.go); nil: no hold.
	Hold *Hold `yaml:"hold"`

	// File is the path the policy was read from, for error messages.
	File string `yaml:"-"`
	// Names lists the destinations sorted by name, for a stable order everywhere.
	Names []string `yaml:"-"`
}

// Jurisdiction says how consent works where the user made no explicit choice.
type Jurisdiction struct {
	Model string `yaml:"model"`
}

// Destination is one vendor endpoint and what it may receive.
type Destination struct {
	Name    string         `yaml:"-"`
	Type    string         `yaml:"type"`
	Purpose string         `yaml:"purpose"`
	Sale    bool           `yaml:"sale"`   // counts as sale/sharing: blocked by GPC (and by opt-out)
	Fields  []string       `yaml:"fields"` // the only fields it receives
	Hash    []string       `yaml:"hash"`   // fields sent SHA-256 hashed after normalisation
	Config  map[string]any `yaml:"config"` // adapter settings, validated by the sink adapter
	// TCFVendorID, when set, requires that vendor's consent in a TC string too.
	TCFVendorID int `yaml:"tcf_vendor_id"`
	// LDU, for meta_capi and tiktok: "auto" flags events of users of a US state opt-out
	// jurisdiction for the vendor's limited data use (docs/vendors.md "Consent fields").
	// Default: off (the adapter's own setting decides, and that is off too).
	LDU string `yaml:"ldu"`
	// OnDoubt is what happens to events of a request whose outcome is unknown (CONTRACT §9,
	// ondoubt.go): OnDoubtSkip or OnDoubtResend. Vendors that dedup by event id always resend.
	// Default: skip.
	OnDoubt string `yaml:"on_doubt"`

	hashed      map[string]bool
	maxEventAge time.Duration // webhook config.max_event_age; 0: the default
}

// LDU modes of a destination.
const (
	LDUAuto = "auto"
	LDUOff  = "off"
)

// Hashed reports whether the field path is sent hashed to this destination.
func (d *Destination) Hashed(path string) bool { return d.hashed[path] }

// SensitiveRule marks events whose field matches a pattern as sensitive: no marketing
// destination receives them, whatever the consent.
type SensitiveRule struct {
	Name    string `yaml:"name"`
	Field   string `yaml:"field"`
	Pattern string `yaml:"pattern"`

	re *regexp.Regexp
}

// Match reports whether value matches the rule's pattern.
func (r *SensitiveRule) Match(value string) bool { return r.re.MatchString(value) }

// Model returns the consent model of a jurisdiction, falling back to the default jurisdiction,
// and to opt_in when the policy defines no default (the safe choice).
func (p *Policy) Model(jurisdiction string) string {
	if j, ok := p.Jurisdictions[jurisdiction]; ok {
		return j.Model
	}
	if j, ok := p.Jurisdictions[DefaultJurisdiction]; ok {
		return j.Model
	}
	return OptIn
}

// KnownJurisdiction reports whether the policy names the jurisdiction.
func (p *Policy) KnownJurisdiction(j string) bool {
	_, ok := p.Jurisdictions[j]
	return ok
}

// Load reads and validates a policy file.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(path, data)
}

// Parse validates policy YAML; file names the source in errors.
func Parse(file string, data []byte) (*Policy, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", file, CleanYAMLError(err))
	}
	p := &Policy{File: file}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(p); err != nil {
		return nil, fmt.Errorf("%s: %w", file, CleanYAMLError(err))
	}
	if err := p.validate(); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return nil, fe.withLine(file, &root)
		}
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return p, nil
}

func (p *Policy) validate() error {
	if p.Version == "" {
		return fieldErr("version", "is required (it is recorded in every decision)")
	}
	if len(p.Purposes) == 0 {
		return fieldErr("purposes", "is required")
	}
	if !slices.Contains(p.Purposes, Necessary) {
		return fieldErr("purposes", "must include %q", Necessary)
	}
	for name, j := range p.Jurisdictions {
		if j.Model != OptIn && j.Model != OptOut {
			return fieldErr("jurisdictions."+name+".model", "must be %s or %s, not %q", OptIn, OptOut, j.Model)
		}
	}
	if len(p.Destinations) == 0 {
		return fieldErr("destinations", "at least one destination is required")
	}
	for name, d := range p.Destinations {
		if d == nil {
			return fieldErr("destinations."+name, "is empty")
		}
		d.Name = name
		if err := p.validateDestination(d); err != nil {
			return err
		}
		p.Names = append(p.Names, name)
	}
	sort.Strings(p.Names)
	for cat, purpose := range p.SegmentCategories {
		if !slices.Contains(p.Purposes, purpose) {
			return fieldErr("segment_categories."+cat, "unknown purpose %q (purposes: %s)", purpose, strings.Join(p.Purposes, ", "))
		}
	}
	for i, r := range p.Sensitive {
		if err := validateSensitive(i, r); err != nil {
			return err
		}
	}
	if err := p.validateLabels(); err != nil {
		return err
	}
	if err := p.validateHold(); err != nil {
		return err
	}
	return p.validateSources()
}

func (p *Policy) validateDestination(d *Destination) error {
	at := "destinations." + d.Name
	if !validName.MatchString(d.Name) {
		return fieldErr(at, "destination name must match %s (it names Kafka topics)", validName)
	}
	if !slices.Contains(DestinationTypes, d.Type) {
		return fieldErr(at+".type", "unknown destination type %q (known: %s)", d.Type, strings.Join(DestinationTypes, ", "))
	}
	if !slices.Contains(p.Purposes, d.Purpose) {
		return fieldErr(at+".purpose", "unknown purpose %q (purposes: %s)", d.Purpose, strings.Join(p.Purposes, ", "))
	}
	for _, f := range d.Fields {
		if err := CheckFieldPath(f); err != nil {
			return fieldErr(at+".fields", "%v", err)
		}
	}
	d.hashed = map[string]bool{}
	for _, f := range d.Hash {
		if !slices.Contains(d.Fields, f) {
			return fieldErr(at+".hash", "%q is not one of the destination's fields", f)
		}
		d.hashed[f] = true
	}
	if err := checkOnDoubt(at, d); err != nil {
		return err
	}
	return d.validateMaxEventAge(at)
}

func validateSensitive(i int, r *SensitiveRule) error {
	at := fmt.Sprintf("sensitive[%d]", i)
	if r == nil {
		return fieldErr(at, "is empty")
	}
	if err := CheckFieldPath(r.Field); err != nil {
		return fieldErr(at+".field", "%v", err)
	}
	re, err := regexp.Compile(r.Pattern)
	if err != nil {
		return fieldErr(at+".pattern", "bad regular expression: %v", err)
	}
	r.re = re
	return nil
}

var validName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
