package ingest

// A small zero-copy walker over JSON text. Request bodies are checked with json.Valid first, so
// these functions only have to find value boundaries; they still bounds-check every index, so
// text that is not valid JSON yields errMalformed and never a panic (FuzzDecodeEvents checks it).
// Walking the text ourselves, instead of unmarshalling into structs, keeps each value's JSON text
// exactly as sent, matches member names exactly (encoding/json matches case-insensitively) and
// avoids copying a 1 MiB batch several times.

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
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
	i := skipSpace(b, 0)
	if i >= len(b) {
		return errMalformed
	}
	if b[i] != '{' {
		return errNotObject
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return errMalformed
		}
		kEnd := skipString(b, i)
		if kEnd < 0 {
			return errMalformed
		}
		key, err := unquoteBytes(b[i:kEnd])
		if err != nil {
			return errMalformed
		}
		i = skipSpace(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return errMalformed
		}
		i = skipSpace(b, i+1)
		vEnd, _ := skipValue(b, i)
		if vEnd < 0 {
			return errMalformed
		}
		if err := fn(key, b[i:vEnd]); err != nil {
			return err
		}
		i = skipSpace(b, vEnd)
		if i >= len(b) {
			return errMalformed
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return nil
		default:
			return errMalformed
		}
	}
}

var errNotObject = errors.New("not a JSON object")

// splitArray returns the elements of the array b as raw JSON texts (sub-slices of b, no copy),
// or errNotArray when b is another JSON value.
func splitArray(b []byte) ([][]byte, error) {
	i := skipSpace(b, 0)
	if i >= len(b) {
		return nil, errMalformed
	}
	if b[i] != '[' {
		return nil, errNotArray
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return nil, nil
	}
	var out [][]byte
	for {
		end, _ := skipValue(b, i)
		if end < 0 {
			return nil, errMalformed
		}
		out = append(out, b[i:end])
		i = skipSpace(b, end)
		if i >= len(b) {
			return nil, errMalformed
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return out, nil
		default:
			return nil, errMalformed
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
