package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// member is one "key": value of a test body; raw is the value's JSON text.
type member struct{ key, raw string }

// object builds a JSON object from base with inject applied: an injected member replaces the
// base member of its key, and injected members are all written (so a key given twice repeats).
func object(base, inject []member) string {
	replaced := map[string]bool{}
	for _, m := range inject {
		replaced[m.key] = true
	}
	var parts []string
	for _, m := range base {
		if !replaced[m.key] {
			parts = append(parts, fmt.Sprintf("%q:%s", m.key, m.raw))
		}
	}
	for _, m := range inject {
		parts = append(parts, fmt.Sprintf("%q:%s", m.key, m.raw))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// badEndpoint is one way of sending a body: alone (400 expected) or as a batch's second message
// after a good one (the bad one rejected alone, by index).
type badEndpoint struct {
	name, path string
	auth       hdr
	base       []member
	batch      bool // the body is {"batch":[good, bad]}
	ids        map[string]bool
}

func badEndpoints() []badEndpoint {
	native := []member{{"event", `"purchase"`}, {"user_id", `"u-1"`}, {"event_id", `"e-1"`}}
	nativeIDs := map[string]bool{"event_id": true, "user_id": true, "anonymous_id": true, "event": true, "jurisdiction": true}
	seg := []member{{"type", `"track"`}, {"event", `"Order Completed"`}, {"userId", `"u-1"`}, {"messageId", `"m-1"`}}
	segIDs := map[string]bool{"messageId": true, "userId": true, "anonymousId": true, "event": true}
	user := map[string]bool{"user_id": true, "anonymous_id": true}
	return []badEndpoint{
		{name: "events", path: "/v1/events", auth: bearer(testKey), base: native, ids: nativeIDs},
		{name: "events batch", path: "/v1/events", auth: bearer(testKey), base: native, ids: nativeIDs, batch: true},
		{name: "consent", path: "/v1/consent", auth: bearer(testKey), base: []member{{"user_id", `"u-1"`}, {"consent", `{"analytics":true}`}}, ids: user},
		{name: "erase", path: "/v1/erase", auth: bearer(testKey), base: []member{{"user_id", `"u-1"`}}, ids: user},
		{name: "segment batch", path: "/v1/batch", auth: basic(testKey), base: seg, ids: segIDs, batch: true},
		{name: "track", path: "/v1/track", auth: basic(testKey), base: seg[1:], ids: segIDs},
		{name: "page", path: "/v1/page", auth: basic(testKey), base: []member{{"name", `"Home"`}, {"anonymousId", `"a-1"`}, {"messageId", `"m-1"`}},
			ids: map[string]bool{"messageId": true, "userId": true, "anonymousId": true}},
		{name: "identify", path: "/v1/identify", auth: basic(testKey), base: []member{{"userId", `"u-1"`}, {"traits", `{"plan":"pro"}`}, {"messageId", `"m-1"`}},
			ids: map[string]bool{"messageId": true, "userId": true, "anonymousId": true}},
	}
}

// TestBadInputContinued: a repeated key at any depth, a number outside the float64 range and a
// control character in an id, event name or jurisdiction are refused at every endpoint, naming
// the member's path: 400 alone, by index in a batch.
func TestBadInputContinued(t *testing.T) {
	var wide []string
	for i := range manyKeys + 4 {
		wide = append(wide, fmt.Sprintf(`"k%d":%d`, i, i))
	}
	tests := []struct {
		name   string
		inject []member
		id     string // the case sets this id field: endpoints without it skip the case
		err    string // "" means accepted
	}{
		{name: "repeated top-level key", inject: []member{{"x", "1"}, {"x", "2"}}, err: `field "x" is a repeated key`},
		{name: "repeated nested key", inject: []member{{"properties", `{"email":"a@b","email":"c@d"}`}}, err: `field "properties.email" is a repeated key`},
		{name: "repeated key in an array", inject: []member{{"extra", `{"items":[{"sku":1},{"sku":1,"sku":2}]}`}}, err: `field "extra.items[1].sku" is a repeated key`},
		{name: "repeated key escaped", inject: []member{{"context", `{"ab":1,"\u0061\u0062":2}`}}, err: `field "context.ab" is a repeated key`},
		{name: "repeated key in a wide object", inject: []member{{"wide", "{" + strings.Join(wide, ",") + `,"k3":0}`}}, err: `field "wide.k3" is a repeated key`},
		{name: "same key in sibling objects", inject: []member{{"extra", `{"a":{"x":1},"b":{"x":1},"c":[{"x":1},{"x":2}]}`}}},
		{name: "wide object without repeats", inject: []member{{"wide", "{" + strings.Join(wide, ",") + "}"}}},
		{name: "number overflows", inject: []member{{"properties", `{"order_value":1e400}`}}, err: `field "properties.order_value" is a number outside the float64 range`},
		{name: "negative number overflows in an array", inject: []member{{"context", `{"n":[1,-1.8e308]}`}}, err: `field "context.n[1]" is a number outside the float64 range`},
		{name: "long number overflows", inject: []member{{"n", strings.Repeat("9", 400)}}, err: `field "n" is a number outside the float64 range`},
		{name: "largest float64", inject: []member{{"properties", `{"v":1.7976931348623157e308,"w":-1e308}`}}},
		{name: "underflow rounds to zero", inject: []member{{"properties", `{"v":1e-400}`}}},
		{name: "newline in event_id", id: "event_id", inject: []member{{"event_id", `"e-1\nforged"`}}, err: `field "event_id" must not contain control characters`},
		{name: "NUL in user_id", id: "user_id", inject: []member{{"user_id", `"u\u0000"`}}, err: `field "user_id" must not contain control characters`},
		{name: "tab in anonymous_id", id: "anonymous_id", inject: []member{{"anonymous_id", `"a\t1"`}}, err: `field "anonymous_id" must not contain control characters`},
		{name: "U+001F in event", id: "event", inject: []member{{"event", `"buy\u001f"`}}, err: `field "event" must not contain control characters`},
		{name: "CR in jurisdiction", id: "jurisdiction", inject: []member{{"jurisdiction", `"EU\r"`}}, err: `field "jurisdiction" must not contain control characters`},
		{name: "newline in messageId", id: "messageId", inject: []member{{"messageId", `"m\n1"`}}, err: `field "messageId" must not contain control characters`},
		{name: "NUL in userId", id: "userId", inject: []member{{"userId", `"\u0000"`}}, err: `field "userId" must not contain control characters`},
		{name: "escape in anonymousId", id: "anonymousId", inject: []member{{"anonymousId", `"a\b"`}}, err: `field "anonymousId" must not contain control characters`},
		{name: "DEL and non-ASCII in user_id", id: "user_id", inject: []member{{"user_id", `"u\u007f-é"`}}},
		{name: "DEL and non-ASCII in userId", id: "userId", inject: []member{{"userId", `"u\u007f-é"`}}},
	}
	h := newHarness(t, "")
	stored := 0
	for _, ep := range badEndpoints() {
		for _, tt := range tests {
			if tt.id != "" && !ep.ids[tt.id] {
				continue
			}
			t.Run(ep.name+"/"+tt.name, func(t *testing.T) {
				bad := object(ep.base, tt.inject)
				body := bad
				if ep.batch {
					body = `{"batch":[` + object(ep.base, nil) + "," + bad + "]}"
				}
				code, _, reply := h.do("POST", ep.path, body, ep.auth)
				var r struct {
					Error    string      `json:"error"`
					Rejected []rejection `json:"rejected"`
				}
				require.NoError(t, json.Unmarshal([]byte(reply), &r), reply)
				switch {
				case tt.err == "":
					assert.Contains(t, []int{200, 202}, code, reply)
					assert.Empty(t, r.Rejected)
					stored += 1 + btoi(ep.batch)
				case ep.batch:
					assert.Contains(t, []int{200, 202}, code, reply)
					require.Len(t, r.Rejected, 1, reply)
					assert.Equal(t, 1, r.Rejected[0].Index)
					assert.True(t, strings.HasPrefix(r.Rejected[0].Error, "event 1: "+tt.err), r.Rejected[0].Error)
					stored++
				default:
					assert.Equal(t, 400, code, reply)
					assert.True(t, strings.HasPrefix(r.Error, "event 0: "+tt.err) || strings.HasPrefix(r.Error, tt.err), r.Error)
				}
			})
		}
	}
	assert.Equal(t, int64(stored), h.count(), "only good events are stored")
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestBadBatchEnvelope: a repeated key or an out-of-range number in a batch body outside its
// events refuses the whole request, naming the path.
func TestBadBatchEnvelope(t *testing.T) {
	ev := `{"event":"a","user_id":"u"}`
	msg := `{"type":"track","event":"a","userId":"u"}`
	var wide strings.Builder // as many top-level members as 1 MiB holds: checked in linear time
	for i := range 60000 {
		fmt.Fprintf(&wide, `"m%d":%d,`, i, i)
	}
	tests := []struct{ name, path, body, err string }{
		{"repeated batch", "/v1/events", `{"batch":[` + ev + `],"batch":[` + ev + `]}`, `field "batch" is a repeated key`},
		{"repeated key beside batch", "/v1/events", `{"batch":[` + ev + `],"meta":{"a":1,"a":1}}`, `field "meta.a" is a repeated key`},
		{"shared context", "/v1/batch", `{"batch":[` + msg + `],"context":{"locale":"de","locale":"fr"}}`, `field "context.locale" is a repeated key`},
		{"number beside batch", "/v1/batch", `{"batch":[` + msg + `],"n":-1e999}`, `field "n" is a number outside the float64 range`},
		{"nested number beside batch", "/v1/batch", `{"batch":[` + msg + `],"integrations":{"x":[0,1e999]}}`, `field "integrations.x[1]" is a number outside the float64 range`},
		{"many members beside batch", "/v1/events", `{` + wide.String() + `"batch":[` + ev + `],"m59999":0}`, `field "m59999" is a repeated key`},
	}
	h := newHarness(t, "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth := bearer(testKey)
			if tt.path != "/v1/events" {
				auth = basic(testKey)
			}
			code, _, reply := h.do("POST", tt.path, tt.body, auth)
			require.Equal(t, 400, code, reply)
			var r errorBody
			require.NoError(t, json.Unmarshal([]byte(reply), &r))
			assert.Equal(t, tt.err, r.Error)
		})
	}
	assert.Zero(t, h.count())
}

// TestCheckJSONPaths: the path names the member from the text's top, with spaces anywhere.
func TestCheckJSONPaths(t *testing.T) {
	tests := []struct{ in, err string }{
		{`{}`, ""},
		{`[]`, ""},
		{`{"a":[[],{}],"b":"\"}","c":true,"d":false,"e":null,"f":-0.5e-3}`, ""},
		{` { "a" : { "b" : [ 1 , { "c" : 1 , "c" : 2 } ] } } `, `field "a.b[1].c" is a repeated key`},
		{`[{"a":1},{"a":1,"a":1}]`, `field "[1].a" is a repeated key`},
		{`1e400`, "is a number outside the float64 range"},
		{`{"a":1`, errMalformed.Error()},
		{`{"a":1}x`, errMalformed.Error()},
	}
	for _, tt := range tests {
		err := checkJSON([]byte(tt.in))
		if tt.err == "" {
			assert.NoError(t, err, tt.in)
			continue
		}
		assert.EqualError(t, err, tt.err, tt.in)
	}
}

// FuzzCheckJSON compares checkJSON with encoding/json's tokenizer on any valid JSON text: both
// must find a repeated key (after unescaping) or an overflowing number, or neither.
func FuzzCheckJSON(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"a":1,"a":2}`, `{"a":{"b":[{"c":1,"\u0063":1}]}}`, `[1e400]`, `{"x":-1e308,"y":1e-999}`,
		`{"a":{"x":1},"b":{"x":1}}`, `{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k3":0}`,
		`"\u0000"`, `[true,false,null,"e"]`,
	} {
		f.Add([]byte(seed))
	}
	for _, seed := range []string{"\"a\xff\"", `[01]`, `[1.]`, `[-]`, `[1e]`, `[tru]`, `{"a":nul}`, `"\x01"`, `"\q"`, `"\u12G4"`, "\"\xed\xa0\x80\""} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// The strict walk is the syntax check: it calls text malformed exactly when utf8.Valid
		// or json.Valid would refuse it (ingest no longer runs them first).
		valid := utf8.Valid(b) && json.Valid(b)
		if got := errors.Is(checkJSON(b), errMalformed); got == valid {
			t.Fatalf("checkJSON(%q) malformed = %v, utf8.Valid && json.Valid = %v", b, got, valid)
		}
		if i := skipSpace(b, 0); i < len(b) && b[i] == '{' {
			walkErr := eachMemberChecked(b, func(_, _ []byte) error { return nil })
			if got := errors.Is(walkErr, errMalformed); got == valid {
				t.Fatalf("eachMemberChecked(%q) malformed = %v, valid = %v", b, got, valid)
			}
		}
		if !valid {
			return
		}
		err := checkJSON(b)
		want := tokenOracle(t, b)
		if (err != nil) != want {
			t.Fatalf("checkJSON(%q) = %v, the tokenizer says bad = %v", b, err, want)
		}
		// The decoders' walk (members and checks at once) must refuse exactly the same objects.
		if i := skipSpace(b, 0); i < len(b) && b[i] == '{' {
			walkErr := eachMemberChecked(b, func(_, _ []byte) error { return nil })
			if (walkErr == nil) != (err == nil) || walkErr != nil && walkErr.Error() != err.Error() {
				t.Fatalf("eachMemberChecked(%q) = %v, checkJSON = %v", b, walkErr, err)
			}
		}
		if err != nil {
			var fe *fieldError
			if !errors.As(err, &fe) && !strings.HasPrefix(err.Error(), "is a number") {
				t.Fatalf("checkJSON(%q) = %v: no path", b, err)
			}
		}
	})
}

// tokenOracle reports whether the valid JSON text b repeats a key in an object or holds a
// number that overflows float64, using json.Decoder's tokens.
func tokenOracle(t *testing.T, b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	type frame struct {
		keys      map[string]bool // nil for an array
		expectKey bool
	}
	var stack []*frame
	value := func() { // a value ended: the enclosing object expects a key next
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			stack[n-1].expectKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return false
		}
		if err != nil {
			t.Fatalf("tokenizer on valid JSON %q: %v", b, err)
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, &frame{keys: map[string]bool{}, expectKey: true})
			case '[':
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
				value()
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].keys != nil && stack[n-1].expectKey {
				if stack[n-1].keys[v] {
					return true
				}
				stack[n-1].keys[v] = true
				stack[n-1].expectKey = false
				continue
			}
			value()
		case json.Number:
			if _, err := strconv.ParseFloat(string(v), 64); errors.Is(err, strconv.ErrRange) {
				return true
			}
			value()
		default:
			value()
		}
	}
}

// BenchmarkCheckJSON is the cost checkJSON adds to decoding a full batch (each event checked once).
func BenchmarkCheckJSON(b *testing.B) {
	native, segment := benchEvents(MaxBatchEvents)
	for name, body := range map[string][]byte{"native": native, "segment": segment} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if err := checkJSON(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
