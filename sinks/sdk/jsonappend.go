package sdk

import "encoding/json"

// The appenders below write JSON values byte for byte as encoding/json writes them, so an adapter
// can build a request body by hand (no maps per event, no reflection, no second scan of every
// value) and still send exactly what json.Marshal of the same shape would. A value with any byte
// that may need escaping (non-ASCII included) goes through json.Marshal itself, at the cost of
// two allocations, so its rules (HTML characters, U+2028/U+2029, invalid UTF-8, control
// characters) are never restated here.

// AppendJSONString appends s as encoding/json writes a string: quoted as is when it holds only
// printable ASCII that needs no escape, else through json.Marshal.
func AppendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plain(s[i]) || s[i] == '"' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// AppendJSONRaw appends a JSON value as json.Marshal writes a json.RawMessage (compacted, with
// HTML characters and U+2028/U+2029 escaped; empty as null): as is when it has no byte that
// could change. v must be valid JSON, as FieldJSON returns it: the fast path does not check.
func AppendJSONRaw(b []byte, v json.RawMessage) []byte {
	if len(v) == 0 {
		return append(b, "null"...)
	}
	for _, c := range v {
		if !plain(c) || c == ' ' {
			q, err := json.Marshal(v)
			if err != nil { // invalid JSON that a caller let through: still a valid body
				return append(b, "null"...)
			}
			return append(b, q...)
		}
	}
	return append(b, v...)
}

// plain reports whether encoding/json copies c unchanged: printable ASCII other than the
// backslash and the HTML characters it escapes.
func plain(c byte) bool {
	return c >= 0x20 && c < 0x7f && c != '\\' && c != '<' && c != '>' && c != '&'
}
