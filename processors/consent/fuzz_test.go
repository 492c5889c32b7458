package consent

import (
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/internal/signals"
	"github.com/tollgate-dev/tollgate/schemas"
)

// consentBits packs an optional consent object into a byte: bit 0 = has a consent object, then
// per purpose (necessary, analytics, marketing) one "key present" and one "value" bit.
func consentFromBits(b uint8, withObject bool) map[string]bool {
	if withObject && b&1 == 0 {
		return nil
	}
	c := map[string]bool{}
	for i, p := range []string{policy.Necessary, "analytics", policy.Marketing} {
		if b&(2<<(2*i)) != 0 {
			c[p] = b&(4<<(2*i)) != 0
		}
	}
	return c
}

// FuzzDecide builds events from fuzzed strings and bits and checks the engine's safety
// invariants: no panic, nothing forwarded that a rule blocks, no field outside the destination's
// list, no hashed field as anything but a 64-hex JSON string, exact sent/stripped bookkeeping.
func FuzzDecide(f *testing.F) {
	pol := loadPolicy(f, "    sale: true\n    fields: [context.page_url, context.user_agent", "    sale: true\n    tcf_vendor_id: 756\n    fields: [context.page_url, context.user_agent",
		"segment_categories:", sourcesYAML+"segment_categories:")
	f.Add("ev-1", "u-42", "a-7f3", "EU", uint8(0xff), uint8(0), false, `"https://shop.example/checkout"`, `" Ann@Example.com "`, `"+1 (650) 555-1212"`, "category", `"adult"`, "", "", "", uint16(0))
	f.Add("ev-2", "", "a", "US-CA", uint8(0), uint8(0x03), true, `"https://x/pharmacy"`, `16505551212`, `"`, "email", `null`, "run", tcAll, optedOutCA, uint16(0x1ff))
	f.Add("", "", "", "", uint8(0x01), uint8(0x19), true, `not json`, `"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"`, `"\u00e9\ud800"`, "a.b", `"\"`, "r|1", tcOneToEight, "DBABBgA~xlgWEYCZAA", uint16(0x2a5))
	f.Add("ev-3", "u", "", "EU", uint8(0xff), uint8(0x80), false, `"x"`, `"e"`, `"p"`, "k", `"v"`, "", tcNothing, "", uint16(0x100))
	// IAB-encoded: a TC string with publisher restrictions, a GPP string with a tcfcav1 section, a
	// national section refusing sensitive data (internal/signals/testdata/iab_vectors.json).
	f.Add("ev-4", "u", "", "EU", uint8(0xff), uint8(0x80), false, `"https://x/health"`, `"e"`, `"p"`, "k", `"v"`, "",
		"CQdWToAQdWToAAKABAENBkEgAPIAAAAAAAAAH0QAgF5gPoAAAAECAAgPoCQAQF5g.YAAAAAAAAAAA",
		"DBABDA~BQdWToAQdWToAAKABAENBkCAAeQAABgAAAfRACQBNUDAAgAgBAgH0QAQIBhIF5wAUATA.YAAAAAAAAAA", uint16(0x1ff))
	f.Add("ev-5", "u", "", "US-CA", uint8(0xff), uint8(0x80), false, `"https://x/health"`, `"e"`, `"p"`, "k", `"v"`, "", "",
		"DBABLA~CAAA_____wBA.QA", uint16(0x1ff))
	f.Fuzz(func(t *testing.T, eventID, userID, anonID, jurisdiction string, consentBits, stateBits uint8, gpc bool,
		pageURL, email, phone, extraKey, extraValue, runID, tcf, gppText string, sigBits uint16) {
		ev := &schemas.Event{
			EventID: eventID, Event: "e", TimestampMs: 1, UserID: userID, AnonymousID: anonID,
			Consent: consentFromBits(consentBits, true), Jurisdiction: jurisdiction, GPC: gpc,
			Context:    map[string]string{"page_url": pageURL},
			Properties: map[string]string{"email": email, "phone": phone, extraKey: extraValue},
			Signals:    signalsFromBits(tcf, gppText, sigBits),
		}
		var st *State
		if stateBits&0x80 == 0 {
			st = &State{Consent: consentFromBits(stateBits, false), Erased: stateBits&0x40 != 0}
		}
		outs := Decide(ev, st, pol, decidedAt, runID)
		require.Len(t, outs, len(pol.Names))
		present := presentFields(ev)

		for i, o := range outs {
			d := o.Decision
			dest := pol.Destinations[pol.Names[i]]
			require.Equal(t, dest.Name, d.Destination)
			require.Equal(t, DecisionID(eventID, dest.Name, runID), d.DecisionID)
			stored, hasStored := false, false
			if st != nil {
				stored, hasStored = st.Consent[dest.Purpose]
			}

			// Rules that must block, whatever else holds.
			mustBlock := (st != nil && st.Erased) ||
				(dest.Purpose != policy.Necessary && ((hasStored && !stored) || (dest.Sale && gpc) ||
					signalRefuses(pol, ev.Signals, dest)))
			if mustBlock {
				require.Equal(t, Blocked, d.Outcome, "reason %s", d.Reason)
			}
			if dest.Purpose == policy.Necessary && (st == nil || !st.Erased) {
				require.Equal(t, Forwarded, d.Outcome)
			}

			// Provenance: the proof hashes exactly the strings received; sources are known and sorted.
			if ev.Signals != nil {
				require.Equal(t, signals.Proof(ev.Signals.TCF, ev.Signals.GPP), d.ConsentProof)
			} else {
				require.Empty(t, d.ConsentProof)
			}
			if d.ConsentSource != "" {
				srcs := strings.Split(d.ConsentSource, ",")
				require.True(t, sort.StringsAreSorted(srcs), d.ConsentSource)
				for _, s := range srcs {
					require.Contains(t, []string{SourceConsentAPI, SourceEvent, SourceTCF, SourceGPP, SourceGCM, SourceCMPIDs, SourceGPC}, s)
				}
			}

			// sent ∪ stripped = present, disjoint, both sorted.
			require.NotNil(t, d.FieldsSent)
			require.True(t, sort.StringsAreSorted(d.FieldsSent))
			require.True(t, sort.StringsAreSorted(d.FieldsStripped))
			require.Equal(t, present, sortedUnion(d.FieldsSent, d.FieldsStripped))

			switch d.Outcome {
			case Blocked:
				require.Nil(t, o.Filtered, "a blocked event is never forwarded")
				require.Empty(t, d.FieldsSent)
				require.Contains(t, []string{ReasonErased, ReasonWithdrawn, ReasonNoConsent, ReasonOptedOut, ReasonGPC, ReasonSensitive}, d.Reason)
			case Forwarded:
				require.NotNil(t, o.Filtered)
				require.Contains(t, []string{ReasonNecessary, ReasonConsented}, d.Reason)
				require.Len(t, o.Filtered.Fields, len(d.FieldsSent))
				for path, v := range o.Filtered.Fields {
					require.True(t, slices.Contains(dest.Fields, path), "field %q not on %s's list", path, dest.Name)
					require.True(t, slices.Contains(d.FieldsSent, path))
					raw, ok := fieldJSON(ev, path)
					require.True(t, ok)
					if dest.Hashed(path) {
						require.True(t, isHashJSON(v), "hashed field %q sent as %q", path, v)
					} else {
						require.Equal(t, raw, v)
					}
				}
			default:
				t.Fatalf("outcome %q", d.Outcome)
			}
		}
	})
}

// signalsFromBits builds consent signals: bit 8 says whether any are sent; bits 0–5 give the
// Consent Mode states of ad_storage, ad_user_data and analytics_storage (present, granted);
// bits 6–7 the CMP lists; bit 9 resolutionStrategy or.
func signalsFromBits(tcf, gppText string, b uint16) *schemas.ConsentSignals {
	if b&0x100 == 0 {
		return nil
	}
	cs := &schemas.ConsentSignals{TCF: tcf, GPP: gppText, GCM: map[string]string{}, CMPAny: b&0x200 != 0}
	for i, k := range []string{"ad_storage", "ad_user_data", "analytics_storage"} {
		if b&(1<<(2*i)) != 0 {
			cs.GCM[k] = map[bool]string{true: "granted", false: "denied"}[b&(2<<(2*i)) != 0]
		}
	}
	if b&0x40 != 0 {
		cs.CMPAllowed = []string{"C0002"}
	}
	if b&0x80 != 0 {
		cs.CMPDenied, cs.CMPHasDenied = []string{"C0004"}, true
	}
	return cs
}

// signalRefuses is an independent reading of the policy's consent_sources: a signal that parses
// and refuses one mapped TCF purpose, the destination's vendor or one mapped Consent Mode key,
// or a GPP opt-out for a sale destination, must block.
func signalRefuses(pol *policy.Policy, cs *schemas.ConsentSignals, dest *policy.Destination) bool {
	if cs == nil {
		return false
	}
	src := pol.ConsentSources
	if tc, err := signals.ParseTCF(cs.TCF); err == nil {
		for _, n := range src.TCF[dest.Purpose] {
			if !tc.Purpose(n) {
				return true
			}
		}
		if dest.TCFVendorID > 0 && !tc.Vendor(dest.TCFVendorID) {
			return true
		}
	}
	for _, k := range src.GCM[dest.Purpose] {
		if cs.GCM[k] == "denied" {
			return true
		}
	}
	if slices.Contains(src.CMPIDsOf(dest.Purpose), "C0004") && cs.CMPHasDenied && !cs.CMPAny {
		return true
	}
	if g, err := signals.ParseGPP(cs.GPP, cs.GPPSID); err == nil && dest.Sale && (g.Sale || g.Sharing || g.TargetedAdvertising) {
		return true
	}
	return false
}

func sortedUnion(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return out
}
