package consent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"unicode"
)

// Destination types whose normalisation differs from the default (docs/vendors.md "Pitfalls" 1–2).
const (
	typeMeta      = "meta_capi"
	typeGoogleAds = "google_ads"
)

// HashField returns the JSON text of the lower-case SHA-256 hex of a field's value, normalised the
// way destType's vendor matches it. jsonText is the field's JSON text as stored in the event: a
// JSON string is hashed by its decoded value, anything else (a number, or text that is not valid
// JSON) by its text, so a phone sent as a number still matches.
//
// A value that already is 64 hex characters is passed through lower-cased rather than hashed
// again: clients often pre-hash, and a double hash silently kills match rates (docs/vendors.md).
func HashField(destType, path, jsonText string) string {
	v := textOf(jsonText)
	if t := strings.TrimSpace(v); isHex64(t) {
		return `"` + strings.ToLower(t) + `"`
	}
	sum := sha256.Sum256([]byte(Normalize(destType, path, v)))
	var out [2*sha256.Size + 2]byte
	out[0] = '"'
	hex.Encode(out[1:], sum[:])
	out[len(out)-1] = '"'
	return string(out[:])
}

// Normalize returns raw as destType's vendor expects it before hashing. The normaliser is chosen
// by the field's last path segment (properties.email → "email"), since a policy lists field paths,
// not vendor keys:
//
//   - contains "email", or "em": email (see normEmail)
//   - contains "phone", or "ph": phone (see normPhone)
//   - fn, ln, first_name, last_name, firstname, lastname: lower case, letters and digits only
//   - ct, city, city_*, *_city: lower case without spaces (not "ethnicity", "velocity")
//   - zp, or contains "zip" or "postal": lower case without spaces
//   - contains "country": trimmed, lower case
//   - anything else: trimmed, lower case
func Normalize(destType, path, raw string) string {
	name := strings.ToLower(path[strings.LastIndexByte(path, '.')+1:])
	switch {
	case name == "em" || strings.Contains(name, "email"):
		return normEmail(destType, raw)
	case name == "ph" || strings.Contains(name, "phone"):
		return normPhone(destType, raw)
	case name == "fn" || name == "ln" || name == "first_name" || name == "last_name" ||
		name == "firstname" || name == "lastname":
		return strings.Map(keepAlnumLower, raw)
	case name == "ct" || name == "city" || strings.HasPrefix(name, "city_") || strings.HasSuffix(name, "_city"),
		name == "zp" || strings.Contains(name, "zip") || strings.Contains(name, "postal"):
		return strings.Map(dropSpaceLower, raw)
	default: // country and everything else
		return strings.ToLower(strings.TrimSpace(raw))
	}
}

// normEmail trims and lower-cases. Only Google Ads also wants gmail.com/googlemail.com addresses
// canonicalised (dots and "+suffix" removed from the local part) and all whitespace removed;
// doing that for Meta breaks matching (docs/vendors.md pitfall 2).
func normEmail(destType, raw string) string {
	s := strings.ToLower(strings.TrimSpace(raw))
	if destType != typeGoogleAds {
		return s
	}
	s = strings.Map(dropSpaceLower, s)
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return s
	}
	local, domain := s[:at], s[at+1:]
	if domain != "gmail.com" && domain != "googlemail.com" {
		return s
	}
	if plus := strings.IndexByte(local, '+'); plus >= 0 {
		local = local[:plus]
	}
	return strings.ReplaceAll(local, ".", "") + "@" + domain
}

// normPhone keeps the digits and drops leading zeros (an international "00" prefix). Meta wants
// the country code without "+"; TikTok and Google want E.164 with "+", and so do ga4/webhook so a
// receiver sees the conventional form (docs/vendors.md pitfall 1). It cannot add a missing country
// code: that is the sender's job.
func normPhone(destType, raw string) string {
	digits := make([]byte, 0, len(raw)+1)
	if destType != typeMeta {
		digits = append(digits, '+')
	}
	start := len(digits)
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c < '0' || c > '9' || (c == '0' && len(digits) == start) {
			continue
		}
		digits = append(digits, c)
	}
	if len(digits) == start {
		return "" // no digits at all: hash the empty string rather than a lone "+"
	}
	return string(digits)
}

// keepAlnumLower is a strings.Map function for names: lower case, letters (any script, with
// their combining marks) and digits only.
func keepAlnumLower(r rune) rune {
	if unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r) {
		return unicode.ToLower(r)
	}
	return -1
}

// dropSpaceLower is a strings.Map function: lower case, no whitespace.
func dropSpaceLower(r rune) rune {
	if unicode.IsSpace(r) {
		return -1
	}
	return unicode.ToLower(r)
}

// textOf returns the value of a field's JSON text as a plain string: the decoded string for a JSON
// string, the text itself otherwise (numbers, booleans, invalid JSON).
func textOf(jsonText string) string {
	if len(jsonText) >= 2 && jsonText[0] == '"' && jsonText[len(jsonText)-1] == '"' {
		if !strings.ContainsAny(jsonText[1:len(jsonText)-1], `"\`) && isPlainASCII(jsonText) {
			return jsonText[1 : len(jsonText)-1] // fast path: nothing to unescape
		}
		var s string
		if json.Unmarshal([]byte(jsonText), &s) == nil {
			return s
		}
	}
	return jsonText
}

// isPlainASCII reports whether s holds only printable ASCII, so a quoted s is valid JSON as is.
func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func isHex64(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
