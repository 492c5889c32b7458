package consent

import (
	"slices"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/policy"
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
	pol := loadPolicy(f)
	f.Add("ev-1", "u-42", "a-7f3", "EU", uint8(0xff), uint8(0), false, `"https://shop.example/checkout"`, `" Ann@Example.com "`, `"+1 (650) 555-1212"`, "category", `"adult"`, "")
	f.Add("ev-2", "", "a", "US-CA", uint8(0), uint8(0x03), true, `"https://x/pharmacy"`, `16505551212`, `"`, "email", `null`, "run")
	f.Add("", "", "", "", uint8(0x01), uint8(0x19), true, `not json`, `"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"`, `"\u00e9\ud800"`, "a.b", `"\"`, "r|1")
	f.Fuzz(func(t *testing.T, eventID, userID, anonID, jurisdiction string, consentBits, stateBits uint8, gpc bool,
		pageURL, email, phone, extraKey, extraValue, runID string) {
		ev := &schemas.Event{
			EventID: eventID, Event: "e", TimestampMs: 1, UserID: userID, AnonymousID: anonID,
			Consent: consentFromBits(consentBits, true), Jurisdiction: jurisdiction, GPC: gpc,
			Context:    map[string]string{"page_url": pageURL},
			Properties: map[string]string{"email": email, "phone": phone, extraKey: extraValue},
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
				(dest.Purpose != policy.Necessary && ((hasStored && !stored) || (dest.Sale && gpc)))
			if mustBlock {
				require.Equal(t, Blocked, d.Outcome, "reason %s", d.Reason)
			}
			if dest.Purpose == policy.Necessary && (st == nil || !st.Erased) {
				require.Equal(t, Forwarded, d.Outcome)
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

func sortedUnion(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return out
}
