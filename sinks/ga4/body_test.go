package ga4

import (
	"context"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// The body as NewRequest built it before appendBody, encoded by json.Marshal: the reference
// appendBody must match byte for byte.
type refBody struct {
	ClientID        string     `json:"client_id"`
	TimestampMicros int64      `json:"timestamp_micros"`
	Consent         refConsent `json:"consent"`
	Events          []refEvent `json:"events"`
}

type refConsent struct {
	AdUserData        string `json:"ad_user_data"`
	AdPersonalization string `json:"ad_personalization"`
}

type refEvent struct {
	Name            string         `json:"name"`
	Params          map[string]any `json:"params"`
	TimestampMicros int64          `json:"timestamp_micros"`
}

// referenceBody is the former NewRequest's encoding of a valid batch.
func referenceBody(t testing.TB, a *adapter, batch []*schemas.FilteredEvent) []byte {
	b := refBody{ClientID: batch[0].UserKey, TimestampMicros: batch[0].TimestampMs * 1000, Events: make([]refEvent, len(batch))}
	adUserData, adPersonalization := true, true
	for i, ev := range batch {
		adUserData = adUserData && sdk.VendorConsent(ev, schemas.VendorAdUserData)
		adPersonalization = adPersonalization && sdk.VendorConsent(ev, schemas.VendorAdPersonalization)
		b.Events[i] = refEvent{Name: sanitise(ev.Event), Params: referenceParams(a, ev), TimestampMicros: ev.TimestampMs * 1000}
	}
	b.Consent = refConsent{grant(adUserData), grant(adPersonalization)}
	data, err := json.Marshal(&b)
	require.NoError(t, err)
	return data
}

// referenceParams is the former paramValues: a map, which json.Marshal sorts by key.
func referenceParams(a *adapter, ev *schemas.FilteredEvent) map[string]any {
	engagement, _ := strconv.Atoi(a.engagement)
	out := map[string]any{engagementParam: engagement}
	for _, p := range a.params {
		raw := strings.TrimSpace(ev.Fields[p.path])
		if p.path == "" || raw == "" {
			continue
		}
		if c := raw[0]; c == '-' || (c >= '0' && c <= '9') {
			if json.Valid([]byte(raw)) {
				out[p.name] = json.Number(raw)
				continue
			}
		}
		s, ok := sdk.FieldString(ev, p.path)
		if !ok || looksIdentifying(s) {
			continue
		}
		out[p.name] = truncate(s, MaxValueLen)
	}
	return out
}

// requireBodyMatches checks NewRequest's body and ContentLength against the reference.
func requireBodyMatches(t testing.TB, a *adapter, batch []*schemas.FilteredEvent) {
	t.Helper()
	req, err := a.NewRequest(context.Background(), batch)
	require.NoError(t, err)
	got, err := io.ReadAll(req.Body)
	require.NoError(t, err)
	want := referenceBody(t, a, batch)
	require.Equal(t, string(want), string(got))
	require.EqualValues(t, len(want), req.ContentLength)
}

var bodyFields = []string{"context.page_url", "context.page_title", "properties.order_value",
	"properties.currency", "properties.quantity", "properties.Zeta", "properties.a-b.c", "properties.1st",
	"properties.ga_id", "properties.note", "properties.flag", "properties.list"}

func TestBodyMatchesEncodingJSON(t *testing.T) {
	d := testDest("http://127.0.0.1:1", bodyFields...)
	d.Config["engagement_time_msec"] = 1234
	a := newAdapter(t, d).(*adapter)
	values := [][]string{ // one event per row, a value per field of bodyFields ("" leaves it out)
		{`"https://shop.example/?a=1&b=<2>"`, `"Kasse – Schritt 2 ☕"`, `149.0`, `"EUR"`, `3`, `-0.5e3`, `"x"`, `1e2`, `"g"`, `"line\u2028sep"`, `true`, `[1,2]`},
		{`"plain"`, `"quote \" back \\ slash"`, `" 12 "`, ` "usd" `, `007`, `-`, `"<script>"`, `null`, `""`, "\"tab\\t\\u0001\"", `false`, `{"a":1}`},
		{`"` + strings.Repeat("é", 150) + `"`, `"` + strings.Repeat("<&>", 50) + `"`, `1.5`, `"bad\xffutf8"`, `"3"`, ``, `not json`, `12abc`, `"` + digest + `"`, `"write ann@example.com"`, `0`, `"\ud83d\udc4d"`},
	}
	var batch []*schemas.FilteredEvent
	names := []string{"purchase", "Order Completed", "session_start", "käse"}
	for i, row := range values {
		ev := testEvent("e"+strconv.Itoa(i), "a-7f3 \"<client>\"", time.UnixMilli(1763892000123+int64(i)))
		ev.Event, ev.Fields = names[i%len(names)], map[string]string{}
		for j, v := range row {
			if v != "" {
				ev.Fields[bodyFields[j]] = v
			}
		}
		batch = append(batch, ev)
		requireBodyMatches(t, a, []*schemas.FilteredEvent{ev})
	}
	requireBodyMatches(t, a, batch)

	denied := testEvent("d", batch[0].UserKey, time.Now())
	denied.VendorConsent = map[string]bool{schemas.VendorAdUserData: true, schemas.VendorAdPersonalization: false}
	requireBodyMatches(t, a, append(batch, denied))
	requireBodyMatches(t, newAdapter(t, testDest("http://127.0.0.1:1")).(*adapter), []*schemas.FilteredEvent{denied})
}

func TestBodyErrors(t *testing.T) {
	fields := make([]string, MaxParams-1)
	for i := range fields {
		fields[i] = "properties.p" + strconv.Itoa(i)
	}
	a := newAdapter(t, testDest("http://127.0.0.1:1", fields...))
	_, err := a.NewRequest(context.Background(), nil)
	require.EqualError(t, err, "ga4: empty batch")

	batch := make([]*schemas.FilteredEvent, MaxBatch)
	for i := range batch {
		batch[i] = testEvent(strconv.Itoa(i), "c", time.Now())
		for _, f := range fields {
			batch[i].Fields[f] = `"` + strings.Repeat("<", MaxValueLen) + `"` // 6 bytes each once escaped
		}
	}
	_, err = a.NewRequest(context.Background(), batch)
	require.ErrorContains(t, err, "exceeds GA4's 130000")
	require.Regexp(t, `^ga4: body of \d+ bytes exceeds GA4's 130000$`, err.Error())
}

// FuzzBody: for any field path and values, the body is what json.Marshal made of the old shape.
func FuzzBody(f *testing.F) {
	f.Add("properties.note", "purchase", "a-7f3", `"caf\u00e9 <b>"`, `149.0`, int64(1763892000123), true)
	f.Add("context.page_title", "Order Completed", "c\u2028", "\"\xff\"", `-1e-3`, int64(-1), false)
	f.Add("properties.ga_x", "", "", `"`+strings.Repeat("ü", 120)+`"`, `12abc`, int64(0), true)
	f.Fuzz(func(t *testing.T, path, name, client, text, number string, ts int64, granted bool) {
		a := newAdapter(t, testDest("http://127.0.0.1:1", "context.page_url", path, "properties.value")).(*adapter)
		ev := testEvent("e", client, time.UnixMilli(ts))
		ev.Event = name
		ev.Fields[path], ev.Fields["properties.value"] = text, number
		ev.VendorConsent = map[string]bool{schemas.VendorAdUserData: granted, schemas.VendorAdPersonalization: !granted}
		batch := []*schemas.FilteredEvent{ev, testEvent("f", client, time.UnixMilli(ts/2))}
		req, err := a.NewRequest(context.Background(), batch)
		require.NoError(t, err)
		got, _ := io.ReadAll(req.Body)
		if want := referenceBody(t, a, batch); string(got) != string(want) {
			t.Fatalf("body\n%s\nencoding/json\n%s", got, want)
		}
	})
}
