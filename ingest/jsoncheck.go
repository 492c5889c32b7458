package ingest

// The strict checker: the one walk over an event's text that is both its syntax check and the
// API's bad-input check (json.go says how a body is read).

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// What json.Valid lets through but the API refuses (docs/api.md, "Bad input"): an object with a
// repeated key at any depth (encoding/json keeps the last, other parsers the first, so two
// readers of one event could disagree on what it says), and a number outside the float64 range
// (it would become ±Inf or fail in every consumer downstream). Underflow rounds to zero, as in
// encoding/json. The event decoders check while they walk an event's members (eachMemberChecked),
// so the check costs no extra walk over the event; nothing is decoded: keys are compared as
// unescaped bytes and only numbers with an exponent or over 308 digits are parsed.

// checkJSON returns a *fieldError naming the path of the first offending member of the valid
// JSON text b (relative to b: "properties.items[2].sku"), or errMalformed, or nil.
func checkJSON(b []byte) error {
	c := checkers.Get().(*checker)
	end, bad := c.value(b, skipSpace(b, 0))
	err := c.result(b, end, bad)
	c.release()
	return err
}

// eachMemberChecked is eachMember that also does checkJSON's checks, in the same walk: the hot
// path reads each event's text once to find its members and check them. fn sees the members up
// to the first offending one; its error is returned as it is.
func eachMemberChecked(b []byte, fn func(key, val []byte) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) {
		return errMalformed
	}
	if b[i] != '{' {
		if !validText(b) {
			return errMalformed
		}
		return errNotObject
	}
	c := checkers.Get().(*checker)
	c.depth = 1
	end, bad := c.members(b, i, 0, fn)
	err := c.result(b, end, bad)
	c.release()
	return err
}

func (c *checker) release() {
	clear(c.keys[:c.high]) // drop the references into b before the pool keeps the stack
	c.keys, c.high, c.depth = c.keys[:0], 0, 0
	if cap(c.keys) > 1024 { // a hostile body's stack: don't keep it for every later walk
		c.keys = make([][]byte, 0, 64)
	}
	checkers.Put(c)
}

// checkMember is checkJSON for the value of the member key of an object; the path starts with key.
func checkMember(key string, val []byte) error {
	err := checkJSON(val)
	var fe *fieldError
	switch {
	case err == nil || errors.Is(err, errMalformed):
		return err
	case errors.As(err, &fe):
		if !strings.HasPrefix(fe.field, "[") {
			key += "."
		}
		return &fieldError{field: key + fe.field, msg: fe.msg}
	default: // a scalar value: the member itself
		return &fieldError{field: key, msg: err.Error()}
	}
}

// checkers keeps the key stacks of finished walks, so walking allocates nothing.
var checkers = sync.Pool{New: func() any { return &checker{keys: make([][]byte, 0, 64)} }}

// checker holds the keys of the objects being walked (innermost last), a stack reused across
// walks, so that walking allocates nothing for objects of up to manyKeys members.
type checker struct {
	keys  [][]byte
	high  int // the most keys held at once in this walk: what release clears
	depth int // objects and arrays open around the value being checked
}

// manyKeys is the member count above which an object's keys go into a map: comparing each new
// key with every earlier one is faster for small objects but quadratic for a hostile large one.
const manyKeys = 16

// badMember is an offending member; path holds its segments innermost first (".key" or "[3]",
// built only on the way out of an error).
type badMember struct {
	path []string
	msg  string
	err  error // from eachMemberChecked's fn: returned as it is
}

func (c *checker) result(b []byte, end int, bad *badMember) error {
	if bad == malformedMember {
		return errMalformed
	}
	if bad != nil && !validText(b) {
		// The walk stopped at the first offending member; text after it that is not JSON makes
		// the whole text malformed, as it would have been had the syntax been checked first.
		return errMalformed
	}
	if bad != nil && bad.err != nil {
		return bad.err
	}
	if bad != nil {
		if len(bad.path) == 0 { // a scalar text, not a member
			return errors.New(bad.msg)
		}
		var p strings.Builder
		for i := len(bad.path) - 1; i >= 0; i-- {
			p.WriteString(bad.path[i])
		}
		return &fieldError{field: strings.TrimPrefix(p.String(), "."), msg: bad.msg}
	}
	if end < 0 || skipSpace(b, end) != len(b) {
		return errMalformed
	}
	return nil
}

var malformedMember = &badMember{msg: "is malformed JSON"}

// validText is the slow check for the rare paths that stop before the strict walk has read
// everything: what the strict walk accepts is exactly valid UTF-8 that is valid JSON.
func validText(b []byte) bool { return utf8.Valid(b) && json.Valid(b) }

// value checks the value starting at b[i] and returns the index just past it.
func (c *checker) value(b []byte, i int) (int, *badMember) {
	if i >= len(b) {
		return -1, malformedMember
	}
	switch b[i] {
	case '{':
		return c.object(b, i)
	case '[':
		return c.array(b, i)
	case '"':
		if end := scanString(b, i); end >= 0 {
			return end, nil
		}
		return -1, malformedMember
	case 't':
		return literal(b, i, "true")
	case 'f':
		return literal(b, i, "false")
	case 'n':
		return literal(b, i, "null")
	default:
		return c.number(b, i)
	}
}

// literal checks that b[i:] starts with the JSON literal word.
func literal(b []byte, i int, word string) (int, *badMember) {
	if len(b)-i < len(word) || string(b[i:i+len(word)]) != word {
		return -1, malformedMember
	}
	return i + len(word), nil
}

func (c *checker) object(b []byte, i int) (int, *badMember) {
	if c.depth++; c.depth > maxNesting {
		return -1, malformedMember
	}
	base := len(c.keys)
	end, bad := c.members(b, i, base, nil)
	c.keys = c.keys[:base]
	c.depth--
	return end, bad
}

// maxNesting is encoding/json's limit on nested objects and arrays: deeper text is not valid
// JSON to it, so it is not to the checker either.
const maxNesting = 10000

// members checks the members of the object at b[i]; its keys go on c.keys from base on. fn, if
// not nil, is called with each member once its value is checked.
// It walks the object like walkObject (json.go) but by itself, not through walkObject's value
// callback: it runs for every object of every event, and a closure capturing the checker would
// be one heap allocation per object on the hot path.
func (c *checker) members(b []byte, i, base int, fn func(key, val []byte) error) (int, *badMember) {
	var many map[string]struct{}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return -1, malformedMember
		}
		kEnd := scanString(b, i)
		if kEnd < 0 {
			return -1, malformedMember
		}
		key, err := unquoteBytes(b[i:kEnd])
		if err != nil {
			return -1, malformedMember
		}
		if many != nil {
			if _, dup := many[string(key)]; dup {
				return -1, &badMember{path: []string{"." + string(key)}, msg: "is a repeated key"}
			}
			many[string(key)] = struct{}{}
		} else {
			for _, k := range c.keys[base:] {
				if bytes.Equal(k, key) {
					return -1, &badMember{path: []string{"." + string(key)}, msg: "is a repeated key"}
				}
			}
			c.keys = append(c.keys, key)
			c.high = max(c.high, len(c.keys))
			if len(c.keys)-base > manyKeys {
				many = make(map[string]struct{}, 2*manyKeys)
				for _, k := range c.keys[base:] {
					many[string(k)] = struct{}{}
				}
			}
		}
		i = skipSpace(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return -1, malformedMember
		}
		i = skipSpace(b, i+1)
		vEnd, bad := c.value(b, i)
		if bad != nil {
			if bad != malformedMember {
				bad.path = append(bad.path, "."+string(key))
			}
			return -1, bad
		}
		if vEnd < 0 {
			return -1, malformedMember
		}
		if fn != nil {
			if err := fn(key, b[i:vEnd]); err != nil {
				return -1, &badMember{err: err}
			}
		}
		i = skipSpace(b, vEnd)
		if i >= len(b) {
			return -1, malformedMember
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return -1, malformedMember
		}
	}
}

func (c *checker) array(b []byte, i int) (int, *badMember) {
	if c.depth++; c.depth > maxNesting {
		return -1, malformedMember
	}
	defer func() { c.depth-- }()
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for n := 0; ; n++ {
		end, bad := c.value(b, i)
		if bad != nil {
			if bad != malformedMember {
				bad.path = append(bad.path, "["+strconv.Itoa(n)+"]")
			}
			return -1, bad
		}
		i = skipSpace(b, end)
		if i >= len(b) {
			return -1, malformedMember
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return i + 1, nil
		default:
			return -1, malformedMember
		}
	}
}

// number checks a number against JSON's grammar and refuses one that overflows float64. Only a
// number with an exponent or more digits than float64's largest value has can overflow, so
// ordinary numbers are never parsed.
func (c *checker) number(b []byte, i int) (int, *badMember) {
	j, exp := i, false
	if j < len(b) && b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case j < len(b) && '1' <= b[j] && b[j] <= '9':
		j = digits(b, j)
	default:
		return -1, malformedMember
	}
	if j < len(b) && b[j] == '.' {
		if k := digits(b, j+1); k > j+1 {
			j = k
		} else {
			return -1, malformedMember
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		exp, j = true, j+1
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if k := digits(b, j); k > j {
			j = k
		} else {
			return -1, malformedMember
		}
	}
	if exp || j-i > 308 {
		if _, err := strconv.ParseFloat(string(b[i:j]), 64); errors.Is(err, strconv.ErrRange) {
			return -1, &badMember{msg: "is a number outside the float64 range"}
		}
	}
	return j, nil
}

// digits returns the index just past the decimal digits starting at b[i].
func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}
