package sdk_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// trickyStrings need every escaping rule encoding/json has: HTML characters, quotes,
// backslashes, control characters (short and \u00XX forms), DEL, U+2028/U+2029, invalid UTF-8
// (replaced by U+FFFD) and non-ASCII text (kept as is).
var trickyStrings = []string{
	"", "plain", "https://shop.example/checkout?a=1&b=<2>", `say "hi"`, `back\slash`,
	"tab\tnew\nline\rcr\bbs\fff", "\x00\x01\x1f", "del\x7f", "line\u2028para\u2029", "bad\xffutf8\xc3",
	"café ☕ 日本", "emoji 👍", "\ufffd", "'single'", "/slash/",
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range trickyStrings {
		want, err := json.Marshal(s)
		require.NoError(t, err)
		require.Equal(t, string(want), string(sdk.AppendJSONString(nil, s)), "%q", s)
		require.Equal(t, "x"+string(want), string(sdk.AppendJSONString([]byte("x"), s)), "appends")
	}
}

func TestAppendJSONRawMatchesEncodingJSON(t *testing.T) {
	raws := []string{
		`null`, `true`, `12.50`, `-0.5e3`, `"plain"`, `"<b>&amp;</b>"`, `{"a": [1, 2,  3]}`,
		` 7 `, "\"line\u2028sep\u2029\"", `"back\\slash \"q\""`, `"caf\u00e9 ☕"`, `{"z":1,"a":{"y":"<"}}`,
		"[\n\t1,\r\n2\n]", `"\u0000"`,
	}
	for _, r := range raws {
		want, err := json.Marshal(json.RawMessage(r))
		require.NoError(t, err, r)
		require.Equal(t, string(want), string(sdk.AppendJSONRaw(nil, json.RawMessage(r))), "%q", r)
	}
	null, _ := json.Marshal(json.RawMessage(nil))
	require.Equal(t, string(null), string(sdk.AppendJSONRaw(nil, nil)))
	require.Equal(t, "null", string(sdk.AppendJSONRaw(nil, json.RawMessage(`{"a": `))), "invalid JSON stays a valid body")
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range trickyStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := sdk.AppendJSONString(nil, s); string(got) != string(want) {
			t.Fatalf("%q: got %s, encoding/json %s", s, got, want)
		}
	})
}
