// Package signals normalises consent signals sent by consent management
// platforms (IAB TC and GPP strings, Google Consent Mode, CMP category ids) into
// granted/denied/unknown states and opt-outs. It fails closed: anything it
// cannot read as "granted" is never granted. Errors are *FieldError: the path
// of the offending member inside the signals object, and why.
package signals

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// State is one consent choice. The zero value is Unknown (no choice made).
type State int

const (
	Unknown State = iota
	Granted
	Denied
)

// stateNames are the states as events, Consent Mode and the audit spell them.
var stateNames = [...]string{Unknown: "unknown", Granted: "granted", Denied: "denied"}

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return stateNames[Unknown]
	}
	return stateNames[s]
}

// ParseState reads "granted" or "denied" (exactly); ok is false for anything else, which
// callers read as Unknown (never a grant) or reject.
func ParseState(v string) (s State, ok bool) {
	switch v {
	case stateNames[Granted]:
		return Granted, true
	case stateNames[Denied]:
		return Denied, true
	}
	return Unknown, false
}

// Merge combines two sources' answers about the same key: a denial wins, then a choice beats
// no choice (b's, the later source's, when both chose).
func Merge(a, b State) State {
	switch {
	case a == Denied || b == Denied:
		return Denied
	case b != Unknown:
		return b
	}
	return a
}

// GCMKeys are the Google Consent Mode v2 keys a policy may map purposes to.
var GCMKeys = map[string]bool{
	"ad_storage": true, "analytics_storage": true, "ad_user_data": true, "ad_personalization": true,
	"functionality_storage": true, "personalization_storage": true, "security_storage": true,
}

// ParseGCM reads a consent_signals.gcm object. Only the exact string "granted"
// grants; "denied" denies; an unknown key or a value of another type is an
// error so the sender learns about it instead of having it silently dropped.
func ParseGCM(m map[string]any) (map[string]State, error) {
	out := make(map[string]State, len(m))
	for k, v := range m {
		if !GCMKeys[k] {
			return nil, fieldErr("gcm."+k, "unknown consent mode key")
		}
		s, ok := v.(string)
		if !ok {
			return nil, fieldErr("gcm."+k, "must be a string")
		}
		if out[k], ok = ParseState(s); !ok {
			return nil, fieldErr("gcm."+k, "must be \"granted\" or \"denied\"")
		}
	}
	return out, nil
}

// ParseGCS reads the gcs URL parameter sGTM receives: "G1" followed by one
// digit for ad_storage then one for analytics_storage ("G100", "G111").
func ParseGCS(gcs string) (map[string]State, error) {
	if len(gcs) != 4 || gcs[:2] != "G1" {
		return nil, fmt.Errorf("gcs %q: want G1 followed by two digits", gcs)
	}
	out := map[string]State{}
	for i, key := range []string{"ad_storage", "analytics_storage"} {
		switch gcs[2+i] {
		case '1':
			out[key] = Granted
		case '0':
			out[key] = Denied
		default:
			return nil, fmt.Errorf("gcs %q: position %d must be 0 or 1", gcs, 3+i)
		}
	}
	return out, nil
}

// gcdKeys are the Consent Mode keys of a gcd string, in the order of its letters.
var gcdKeys = [...]string{"ad_storage", "analytics_storage", "ad_user_data", "ad_personalization"}

// gcdStates maps a gcd letter to the key's resulting state. Each letter tells a default and an
// update: l neither; p denied by default; q denied by default and update; t granted by default;
// r denied by default, granted by update; m denied by update; n granted by update; u granted by
// default, denied by update; v granted by default and update. The update, when there is one,
// is the user's choice.
var gcdStates = map[byte]State{
	'l': Unknown, 'p': Denied, 'q': Denied, 't': Granted, 'r': Granted,
	'm': Denied, 'n': Granted, 'u': Denied, 'v': Granted,
}

// ParseGCD reads the gcd URL parameter Google tags send ("11p1p1p1p5"): two digits, then for
// ad_storage, analytics_storage, ad_user_data and ad_personalization one letter each, separated
// and followed by a digit; anything after those ten characters is not about these keys. A key
// whose letter says "not set" is left out (no choice); an unknown letter rejects the string.
func ParseGCD(gcd string) (map[string]State, error) {
	if len(gcd) < 10 || len(gcd) > 64 || !isDigit(gcd[0]) || !isDigit(gcd[1]) {
		return nil, fmt.Errorf("gcd %q: want two digits then four letter+digit pairs, like 11p1p1p1p5", gcd)
	}
	out := map[string]State{}
	for i, key := range gcdKeys {
		letter, sep := gcd[2+2*i], gcd[3+2*i]
		st, ok := gcdStates[letter]
		if !ok {
			return nil, fmt.Errorf("gcd %q: position %d: unknown consent letter %q for %s", gcd, 3+2*i, letter, key)
		}
		if !isDigit(sep) {
			return nil, fmt.Errorf("gcd %q: position %d must be a digit", gcd, 4+2*i)
		}
		if st != Unknown {
			out[key] = st
		}
	}
	return out, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// MergeGCM adds Consent Mode states from another source to m (key → "granted"/"denied", as
// events carry them): a key both sources name is denied if either denies it.
func MergeGCM(m map[string]string, states map[string]State) map[string]string {
	if m == nil {
		m = make(map[string]string, len(states))
	}
	for k, st := range states {
		prev, _ := ParseState(m[k])
		if st = Merge(prev, st); st != Unknown {
			m[k] = st.String()
		}
	}
	return m
}

// CMPIDs is the allowed/denied category id lists of a CMP (consent_signals.cmp_ids,
// or RudderStack's allowedConsentIds/deniedConsentIds).
type CMPIDs struct {
	Allowed []string
	Denied  []string
	// HasDenied records that a denied list was sent at all: without one,
	// every mapped id not allowed is denied (fail closed).
	HasDenied bool
}

// State says what the lists say about one id.
func (c CMPIDs) State(id string) State {
	for _, d := range c.Denied {
		if d == id {
			return Denied
		}
	}
	for _, a := range c.Allowed {
		if a == id {
			return Granted
		}
	}
	if !c.HasDenied && len(c.Allowed) > 0 {
		return Denied
	}
	return Unknown
}

// Google755 maps TCF purpose consents to Consent Mode keys the way Google does
// for vendor 755 when a Google destination has only a TC string.
func Google755(purpose func(n int) bool) map[string]State {
	st := func(ok bool) State {
		if ok {
			return Granted
		}
		return Denied
	}
	return map[string]State{
		"ad_storage":         st(purpose(1)),
		"ad_user_data":       st(purpose(1) && purpose(7)),
		"ad_personalization": st(purpose(3) && purpose(4)),
	}
}

// Proof is the lower-hex SHA-256 of the TC and GPP strings joined by "\n",
// empty when neither was sent.
func Proof(tcf, gpp string) string {
	if tcf == "" && gpp == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{tcf, gpp}, "\n")))
	return hex.EncodeToString(sum[:])
}

// ConsentManagement is RudderStack's context.consentManagement.
type ConsentManagement struct {
	Provider string
	IDs      CMPIDs
	// Any is true for resolutionStrategy "or": one allowed id of a purpose
	// suffices; otherwise ("and", or absent) every mapped id must be allowed.
	Any bool
}

// ParseConsentManagement reads context.consentManagement; errors are *FieldError with Field
// "consentManagement.<key>".
func ParseConsentManagement(m map[string]any) (ConsentManagement, error) {
	var cm ConsentManagement
	if p, ok := m["provider"]; ok {
		s, ok := p.(string)
		if !ok {
			return cm, fieldErr("consentManagement.provider", "must be a string")
		}
		cm.Provider = s
	}
	list := func(key string) ([]string, bool, error) {
		v, ok := m[key]
		if !ok {
			return nil, false, nil
		}
		arr, ok := v.([]any)
		if !ok {
			return nil, true, fieldErr("consentManagement."+key, "must be an array of strings")
		}
		out := make([]string, 0, len(arr))
		for i, e := range arr {
			s, ok := e.(string)
			if !ok {
				return nil, true, fieldErr(fmt.Sprintf("consentManagement.%s[%d]", key, i), "must be a string")
			}
			out = append(out, s)
		}
		return out, true, nil
	}
	var err error
	if cm.IDs.Allowed, _, err = list("allowedConsentIds"); err != nil {
		return cm, err
	}
	if cm.IDs.Denied, cm.IDs.HasDenied, err = list("deniedConsentIds"); err != nil {
		return cm, err
	}
	switch rs := m["resolutionStrategy"]; rs {
	case nil, "and":
	case "or":
		cm.Any = true
	default:
		return cm, fieldErr("consentManagement.resolutionStrategy", "must be \"and\" or \"or\"")
	}
	return cm, nil
}

// Purpose resolves one purpose mapped to ids. Under "and" every id must be
// allowed: one denied id denies, and an id the lists say nothing about leaves
// the purpose Unknown (never Granted). Under "or" one allowed id grants.
func (cm ConsentManagement) Purpose(ids []string) State {
	granted, denied, unknown := 0, 0, 0
	for _, id := range ids {
		switch cm.IDs.State(id) {
		case Denied:
			denied++
		case Granted:
			granted++
		default:
			unknown++
		}
	}
	switch {
	case cm.Any && granted > 0:
		return Granted
	case denied > 0:
		return Denied
	case granted > 0 && unknown == 0:
		return Granted
	}
	return Unknown
}
