package ingest

// A small zero-copy walker over JSON text. A request body is read in one pass that splits it into
// its events (splitBody: the top-level members and the batch's element boundaries), then each
// event's members are read once by its decoder with the strict checker below, which is also the
// syntax check (UTF-8, escapes, literals, number grammar): no separate utf8.Valid or json.Valid
// pass. The lenient helpers (eachMember, skipValue) only find value boundaries in text the strict
// walk has read or will read; they still bounds-check every index, so text that is not valid JSON
// yields errMalformed and never a panic (FuzzDecodeEvents checks it).
// Walking the text ourselves, instead of unmarshalling into structs, keeps each value's JSON text
// exactly as sent, matches member names exactly (encoding/json matches case-insensitively) and
// avoids copying a 1 MiB batch several times.

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

var errMalformed = errors.New("malformed JSON")

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skipString returns the index just past the string starting with the quote at b[i], or -1.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// scanString is skipString for text not yet validated: it returns -1 unless the string at b[i]
// is valid JSON (no raw control character, only JSON's escapes) and valid UTF-8, which is what
// utf8.Valid and json.Valid together accept.
func scanString(b []byte, i int) int {
	for j := i + 1; j < len(b); {
		c := b[j]
		switch {
		case c == '"':
			return j + 1
		case c == '\\':
			if j+1 >= len(b) {
				return -1
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(b) || !isHex(b[j+2]) || !isHex(b[j+3]) || !isHex(b[j+4]) || !isHex(b[j+5]) {
					return -1
				}
				j += 6
			default:
				return -1
			}
		case c < 0x20:
			return -1
		case c < utf8.RuneSelf:
			j++
		default:
			r, size := utf8.DecodeRune(b[j:])
			if r == utf8.RuneError && size == 1 {
				return -1
			}
			j += size
		}
	}
	return -1
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// skipValue returns the index just past the value starting at b[i] and its nesting depth
// (0 for a scalar, 1 for a flat object or array), or -1.
func skipValue(b []byte, i int) (end, depth int) {
	if i >= len(b) {
		return -1, 0
	}
	switch b[i] {
	case '"':
		return skipString(b, i), 0
	case '{', '[':
		level, deepest := 0, 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				if j = skipString(b, j); j < 0 {
					return -1, 0
				}
				j-- // the loop's j++ lands just past the string
			case '{', '[':
				level++
				deepest = max(deepest, level)
			case '}', ']':
				level--
				if level == 0 {
					return j + 1, deepest
				}
			}
		}
		return -1, 0
	default: // number, true, false, null
		j := i
		for j < len(b) && !isSpace(b[j]) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ':' {
			j++
		}
		if j == i {
			return -1, 0
		}
		return j, 0
	}
}

// eachMember calls fn with every member of the object b (key unescaped, value as raw JSON text
// without surrounding space). The key aliases b when it has no escapes: fn must copy it (string(key))
// to keep it. It returns errNotObject when b is another JSON value.
// eachObjectMember is eachMember for the value of a named field: a value that is not an object
// becomes a client error naming the field.
func eachObjectMember(field string, b []byte, fn func(key, val []byte) error) error {
	err := eachMember(b, fn)
	if errors.Is(err, errNotObject) {
		return fieldErr(field, "must be an object")
	}
	return err
}

func eachMember(b []byte, fn func(key, val []byte) error) error {
	_, err := walkObject(b, func(key []byte, i int) (int, error) {
		end, _ := skipValue(b, i)
		if end < 0 {
			return -1, errMalformed
		}
		return end, fn(key, b[i:end])
	})
	return err
}

// walkObject calls value with each member's key (unescaped, aliasing b when it has no escapes)
// and the index where its value starts; value returns the index just past the value. Keys are
// scanned strictly (scanString). It returns the index just past the object, errNotObject when b
// holds another JSON value, or value's error.
func walkObject(b []byte, value func(key []byte, i int) (int, error)) (int, error) {
	i := skipSpace(b, 0)
	if i >= len(b) {
		return -1, errMalformed
	}
	if b[i] != '{' {
		return -1, errNotObject
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return -1, errMalformed
		}
		kEnd := scanString(b, i)
		if kEnd < 0 {
			return -1, errMalformed
		}
		key, err := unquoteBytes(b[i:kEnd])
		if err != nil {
			return -1, errMalformed
		}
		i = skipSpace(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return -1, errMalformed
		}
		i = skipSpace(b, i+1)
		vEnd, err := value(key, i)
		if err != nil {
			return -1, err
		}
		i = skipSpace(b, vEnd)
		if i >= len(b) {
			return -1, errMalformed
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return -1, errMalformed
		}
	}
}

var errNotObject = errors.New("not a JSON object")

// splitArray returns the elements of the array starting at b[i] as raw JSON texts (sub-slices
// of b, no copy), the index just past the array and its deepest nesting (1 for an array of
// scalars), or errNotArray when b[i] starts another JSON value.
func splitArray(b []byte, i int) (items [][]byte, end, deepest int, err error) {
	if i >= len(b) {
		return nil, -1, 0, errMalformed
	}
	if b[i] != '[' {
		return nil, -1, 0, errNotArray
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return nil, i + 1, 1, nil
	}
	deepest = 1
	for {
		end, depth := skipValue(b, i)
		if end < 0 {
			return nil, -1, 0, errMalformed
		}
		items = append(items, b[i:end])
		deepest = max(deepest, depth+1)
		i = skipSpace(b, end)
		if i >= len(b) {
			return nil, -1, 0, errMalformed
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return items, i + 1, deepest, nil
		default:
			return nil, -1, 0, errMalformed
		}
	}
}

var errNotArray = errors.New("not a JSON array")

// unquote returns the value of the JSON string q (with its quotes).
func unquote(q []byte) (string, error) {
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
		return "", errMalformed
	}
	inner := q[1 : len(q)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), nil // the common case: nothing to unescape
	}
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return "", errMalformed
	}
	return s, nil
}

// unquoteBytes is unquote without a copy when there is nothing to unescape.
func unquoteBytes(q []byte) ([]byte, error) {
	if len(q) >= 2 && q[0] == '"' && q[len(q)-1] == '"' && bytes.IndexByte(q[1:len(q)-1], '\\') < 0 {
		return q[1 : len(q)-1], nil
	}
	s, err := unquote(q)
	return []byte(s), err
}

func isNull(v []byte) bool { return len(v) == 0 || string(v) == "null" }

// compactText returns v's JSON text without insignificant space. Scalars are already compact.
func compactText(v []byte) string {
	if len(v) == 0 || (v[0] != '{' && v[0] != '[') {
		return string(v)
	}
	var buf bytes.Buffer
	buf.Grow(len(v))
	if err := json.Compact(&buf, v); err != nil {
		return string(v) // unreachable for validated bodies; keep the text rather than lose it
	}
	return buf.String()
}

// bodyMessage describes why body is not valid UTF-8 JSON text.
func bodyMessage(body []byte) string {
	if !utf8.Valid(body) {
		return "body is not valid UTF-8"
	}
	return syntaxMessage(body)
}

// syntaxMessage describes why body is not valid JSON, with the byte offset where encoding/json
// says it stopped.
func syntaxMessage(body []byte) string {
	var v struct{}
	err := json.Unmarshal(body, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return "malformed JSON at byte " + strconv.FormatInt(se.Offset, 10) + ": " + se.Error()
	}
	return "malformed JSON"
}

// hasControl reports whether s holds a control character (U+0000–U+001F). JSON text cannot carry
// one raw, only escaped (\n, \u0000), which unquote turns into the character.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 {
			return true
		}
	}
	return false
}
