package ingest

import (
	"encoding/json"
	"errors"
	"net/url"

	"github.com/tollgate-dev/tollgate/internal/signals"
	"github.com/tollgate-dev/tollgate/schemas"
)

// maxSignal bounds a TC or GPP string: a TC string naming every vendor of the
// global vendor list is a few kilobytes.
const maxSignal = 16 << 10

// parsed caches parsed TC and GPP strings across requests (signals.Cache says why).
var parsed = signals.NewCache(1024)

// signalErr turns an error of package signals (a *signals.FieldError, whose path is relative
// to the object carrying the signals) into a field error under prefix, so the sender sees the
// full path of its own body.
func signalErr(prefix string, err error) error {
	var fe *signals.FieldError
	if !errors.As(err, &fe) {
		return fieldErr(prefix, "%s", err.Error())
	}
	return fieldErr(prefix+"."+fe.Field, "%s", fe.Reason)
}

// readSignals reads a consent_signals object (native events) or the same keys
// of Segment's context.consent into cs; field is the object's path. Every
// string is parsed here so a malformed one rejects the event at the door
// (400 / by index) rather than at the consent engine.
func readSignals(cs *schemas.ConsentSignals, field string, key, v []byte) (bool, error) {
	at := field + "." + string(key)
	switch string(key) {
	case "tcf":
		s, err := stringField(v, at, maxSignal)
		if err != nil || s == "" {
			return true, err
		}
		if _, err := parsed.ParseTCF(s); err != nil {
			return true, signalErr(field, err)
		}
		cs.TCF = s
	case "gpp":
		s, err := stringField(v, at, maxSignal)
		if err != nil || s == "" {
			return true, err
		}
		cs.GPP = s
	case "gpp_sid":
		if isNull(v) {
			return true, nil
		}
		var sid []int
		if err := json.Unmarshal(v, &sid); err != nil {
			return true, fieldErr(at, "must be an array of GPP section ids")
		}
		cs.GPPSID = sid
	case "gcm":
		if isNull(v) {
			return true, nil
		}
		var m map[string]any
		if err := json.Unmarshal(v, &m); err != nil {
			return true, fieldErr(at, "must be an object of Consent Mode keys")
		}
		states, err := signals.ParseGCM(m)
		if err != nil {
			return true, signalErr(field, err)
		}
		cs.GCM = make(map[string]string, len(states))
		for k, s := range states {
			cs.GCM[k] = s.String()
		}
	case "gcs", "gcd":
		// The URL parameters Google tags send, accepted in the object too for a server that
		// forwards them: merged into gcm, where any denial of a key wins.
		str, err := stringField(v, at, 64)
		if err != nil || str == "" {
			return true, err
		}
		states, err := parseGoogleParam(string(key), str)
		if err != nil {
			return true, fieldErr(at, "%s", err.Error())
		}
		cs.GCM = signals.MergeGCM(cs.GCM, states)
	case "cmp_ids":
		if isNull(v) {
			return true, nil
		}
		var ids struct {
			Allowed *[]string `json:"allowed"`
			Denied  *[]string `json:"denied"`
		}
		if err := json.Unmarshal(v, &ids); err != nil {
			return true, fieldErr(at, `must be {"allowed": [ids], "denied": [ids]}`)
		}
		if ids.Allowed != nil {
			cs.CMPAllowed = *ids.Allowed
		}
		if ids.Denied != nil {
			cs.CMPDenied, cs.CMPHasDenied = *ids.Denied, true
		}
	default:
		return false, nil
	}
	return true, nil
}

// finishSignals checks what needs more than one key (the GPP string with its
// gpp_sid) and returns nil when nothing was sent.
func finishSignals(cs *schemas.ConsentSignals, field string) (*schemas.ConsentSignals, error) {
	if cs.GPP != "" {
		if _, err := parsed.ParseGPP(cs.GPP, cs.GPPSID); err != nil {
			return nil, signalErr(field, err)
		}
	}
	if cs.TCF == "" && cs.GPP == "" && len(cs.GCM) == 0 && len(cs.CMPAllowed) == 0 && !cs.CMPHasDenied {
		return nil, nil
	}
	if cs.GPPSID == nil {
		cs.GPPSID = []int{}
	}
	if cs.GCM == nil {
		cs.GCM = map[string]string{}
	}
	if cs.CMPAllowed == nil {
		cs.CMPAllowed = []string{}
	}
	if cs.CMPDenied == nil {
		cs.CMPDenied = []string{}
	}
	return cs, nil
}

// parseGoogleParam parses a gcs or gcd value.
func parseGoogleParam(name, v string) (map[string]signals.State, error) {
	if name == "gcs" {
		return signals.ParseGCS(v)
	}
	return signals.ParseGCD(v)
}

// queryGCM reads the gcs and gcd URL parameters of a request (sGTM-style collection endpoints
// receive them): Consent Mode states for every event of the request.
func queryGCM(q url.Values) (map[string]signals.State, *requestError) {
	var out map[string]signals.State
	for _, name := range []string{"gcs", "gcd"} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		states, err := parseGoogleParam(name, v)
		if err != nil {
			return nil, malformed("query parameter %s: %v", name, err)
		}
		if out == nil {
			out = map[string]signals.State{}
		}
		for k, st := range states {
			out[k] = signals.Merge(out[k], st)
		}
	}
	return out, nil
}

// addGCM merges the request's Consent Mode states into an event's signals.
func addGCM(ev *schemas.Event, states map[string]signals.State) {
	if len(states) == 0 {
		return
	}
	if ev.Signals == nil {
		ev.Signals = &schemas.ConsentSignals{GPPSID: []int{}, CMPAllowed: []string{}, CMPDenied: []string{}}
	}
	ev.Signals.GCM = signals.MergeGCM(ev.Signals.GCM, states)
}

// nativeSignals reads a native event's consent_signals object.
func nativeSignals(v []byte) (*schemas.ConsentSignals, error) {
	if isNull(v) {
		return nil, nil
	}
	var cs schemas.ConsentSignals
	err := eachObjectMember("consent_signals", v, func(key, val []byte) error {
		_, err := readSignals(&cs, "consent_signals", key, val)
		return err
	})
	if err != nil {
		return nil, err
	}
	return finishSignals(&cs, "consent_signals")
}

// consentManagement reads RudderStack's context.consentManagement into cs:
// its allowed/denied consent ids are the cmp_ids lists.
func consentManagement(cs *schemas.ConsentSignals, v []byte) error {
	if isNull(v) {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(v, &m); err != nil {
		return fieldErr("context.consentManagement", "must be an object")
	}
	cm, err := signals.ParseConsentManagement(m)
	if err != nil {
		return signalErr("context", err)
	}
	// Like every context key, a message's own consentManagement replaces the batch's.
	cs.CMPAllowed, cs.CMPDenied = cm.IDs.Allowed, cm.IDs.Denied
	cs.CMPHasDenied, cs.CMPAny = cm.IDs.HasDenied, cm.Any
	return nil
}
