package sdk_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

const digest = "f1d2d2f924e986ac86fdf7b36c94bcdf32beec15a0e1f1d2d2f924e986ac86fd"

func TestFieldString(t *testing.T) {
	ev := &schemas.FilteredEvent{Fields: map[string]string{
		"a": `"plain"`, "b": `"esc\"aped \u00e9"`, "c": `149.5`, "d": `true`, "e": `null`,
		"f": `""`, "g": `{"x":1}`, "h": `[1]`, "i": `"broken`, "j": ` "spaced" `,
	}}
	for path, want := range map[string]string{"a": "plain", "b": `esc"aped é`, "c": "149.5", "d": "true", "j": "spaced"} {
		got, ok := sdk.FieldString(ev, path)
		require.True(t, ok, path)
		require.Equal(t, want, got, path)
	}
	for _, path := range []string{"e", "f", "g", "h", "i", "missing"} {
		_, ok := sdk.FieldString(ev, path)
		require.False(t, ok, path)
	}
}

func TestFieldNumber(t *testing.T) {
	ev := &schemas.FilteredEvent{Fields: map[string]string{"n": "149.0", "s": `"12.50"`, "x": `"EUR"`}}
	n, ok := sdk.FieldNumber(ev, "n")
	require.True(t, ok)
	require.Equal(t, 149.0, n)
	n, ok = sdk.FieldNumber(ev, "s")
	require.True(t, ok)
	require.Equal(t, 12.5, n)
	_, ok = sdk.FieldNumber(ev, "x")
	require.False(t, ok)
}

// A field holding invalid JSON text is sent as a string, so the body stays valid.
func TestFieldJSON(t *testing.T) {
	ev := &schemas.FilteredEvent{Fields: map[string]string{"ok": `{"a":[1,2]}`, "bad": `{oops`}}
	v, _ := sdk.FieldJSON(ev, "ok")
	require.JSONEq(t, `{"a":[1,2]}`, string(v))
	v, _ = sdk.FieldJSON(ev, "bad")
	require.True(t, json.Valid(v))
	require.Equal(t, `"{oops"`, string(v))
}

func TestHashedField(t *testing.T) {
	ev := &schemas.FilteredEvent{Fields: map[string]string{
		"h": `"` + digest + `"`, "raw": `"ann@example.com"`, "upper": `"F1D2D2F924E986AC86FDF7B36C94BCDF32BEEC15A0E1F1D2D2F924E986AC86FD"`,
	}}
	v, ok := sdk.HashedField(ev, "h")
	require.True(t, ok)
	require.Equal(t, digest, v)
	for _, p := range []string{"raw", "upper", "missing"} {
		_, ok := sdk.HashedField(ev, p)
		require.False(t, ok, p)
	}
}

func TestCheckAge(t *testing.T) {
	ev := &schemas.FilteredEvent{TimestampMs: now.Add(-73 * time.Hour).UnixMilli()}
	require.EqualError(t, sdk.CheckAge(ev, now, 72*time.Hour, "ga4"), "event is 73h0m0s old; ga4 accepts events at most 72h0m0s old")
	require.NoError(t, sdk.CheckAge(ev, now, 7*24*time.Hour, "meta_capi"))
}
