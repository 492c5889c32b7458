package policy

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/tollgate-dev/tollgate/internal/signals"
)

// ConsentSources maps the policy's purposes to the consent signals a site's
// CMP sends (docs/consent.md "Consent signals from CMPs"). A purpose is
// granted by a signal only when every listed TCF purpose or Consent Mode key
// is granted.
type ConsentSources struct {
	TCF    map[string][]int    `yaml:"tcf"`     // purpose -> TCF v2.2 purpose numbers (1–11)
	GCM    map[string][]string `yaml:"gcm"`     // purpose -> Google Consent Mode keys
	CMPIDs map[string]string   `yaml:"cmp_ids"` // CMP category id -> purpose

	byPurpose map[string][]string // purpose -> its CMP ids, sorted
}

// CMPIDsOf returns the CMP category ids mapped to purpose, sorted.
func (c *ConsentSources) CMPIDsOf(purpose string) []string { return c.byPurpose[purpose] }

// Empty reports whether no signal is mapped at all.
func (c *ConsentSources) Empty() bool {
	return len(c.TCF) == 0 && len(c.GCM) == 0 && len(c.CMPIDs) == 0
}

func (p *Policy) validateSources() error {
	c := &p.ConsentSources
	known := func(at, purpose string) error {
		if !slices.Contains(p.Purposes, purpose) {
			return fieldErr(at, "unknown purpose %q (purposes: %s)", purpose, strings.Join(p.Purposes, ", "))
		}
		return nil
	}
	for purpose, nums := range c.TCF {
		at := "consent_sources.tcf." + purpose
		if err := known(at, purpose); err != nil {
			return err
		}
		if len(nums) == 0 {
			return fieldErr(at, "is mapped to no TCF purpose")
		}
		for i, n := range nums {
			if n < 1 || n > signals.TCFPurposes {
				return fieldErr(fmt.Sprintf("%s[%d]", at, i), "unknown TCF purpose %d (TCF v2.2 purposes are 1–%d)", n, signals.TCFPurposes)
			}
		}
	}
	for purpose, keys := range c.GCM {
		at := "consent_sources.gcm." + purpose
		if err := known(at, purpose); err != nil {
			return err
		}
		if len(keys) == 0 {
			return fieldErr(at, "is mapped to no Consent Mode key")
		}
		for i, k := range keys {
			if !signals.GCMKeys[k] {
				return fieldErr(fmt.Sprintf("%s[%d]", at, i), "unknown Consent Mode key %q", k)
			}
		}
	}
	c.byPurpose = map[string][]string{}
	for id, purpose := range c.CMPIDs {
		at := "consent_sources.cmp_ids." + id
		if id == "" {
			return fieldErr("consent_sources.cmp_ids", "empty CMP id")
		}
		if purpose == "" {
			return fieldErr(at, "is mapped to no purpose")
		}
		if err := known(at, purpose); err != nil {
			return err
		}
		c.byPurpose[purpose] = append(c.byPurpose[purpose], id)
	}
	for _, ids := range c.byPurpose {
		sort.Strings(ids)
	}
	for name, d := range p.Destinations {
		if d != nil && (d.TCFVendorID < 0 || d.TCFVendorID > 0xffff) {
			return fieldErr("destinations."+name+".tcf_vendor_id", "must be a TCF vendor id (1–65535), not %d", d.TCFVendorID)
		}
		if err := checkLDU(name, d); err != nil {
			return err
		}
	}
	return nil
}

// checkLDU validates a destination's ldu: a mode, and only for the vendors that have one.
func checkLDU(name string, d *Destination) error {
	if d == nil || d.LDU == "" {
		return nil
	}
	at := "destinations." + name + ".ldu"
	if d.LDU != LDUAuto && d.LDU != LDUOff {
		return fieldErr(at, "must be %q or %q, not %q", LDUAuto, LDUOff, d.LDU)
	}
	if d.Type != TypeMetaCAPI && d.Type != TypeTikTok {
		return fieldErr(at, "only %s and %s destinations have limited data use, not %s", TypeMetaCAPI, TypeTikTok, d.Type)
	}
	return nil
}
