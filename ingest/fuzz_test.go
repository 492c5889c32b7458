package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/schemas"
)

func fuzzDecoder() *decoder {
	return &decoder{
		received:     time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
		gpc:          true,
		jurisdiction: "EU",
		categories:   map[string]string{"Analytics": "analytics", "Advertising": "marketing", "SaleOfData": "marketing"},
	}
}

// FuzzDecodeEvents feeds arbitrary bodies to every body decoder (native, Segment batch and
// single calls, consent). They must never panic, and whatever they accept must be a valid event
// that survives the Avro round trip.
func FuzzDecodeEvents(f *testing.F) {
	for _, seed := range []string{
		oneEvent,
		batchOf(3, oneEvent),
		`{"batch":[{"event":"a","user_id":"u","consent":{"analytics":true},"context":{"page_url":"x","n":{"a":[1,2,{"b":null}]}},"properties":{"v":1.50e3,"s":"\u00e9\"","t":true}},{"event":5},"x",[],null]}`,
		`{"event":"a","anonymous_id":"a","timestamp":"2026-11-23T10:00:00.5+02:00","event_id":"e","jurisdiction":"US-CA","gpc":false}`,
		`{"batch":[{"type":"track","event":"e","userId":"u","context":{"page":{"url":"u"},"consent":{"categoryPreferences":{"Analytics":true,"Advertising":false}}}},{"type":"page","name":"n","anonymousId":"a","originalTimestamp":"2026-11-23T10:00:00Z"}],"sentAt":"2026-11-23T10:00:01Z","context":{"locale":"de"}}`,
		`{"type":"identify","userId":"u","traits":{"email":"a@b"}}`,
		`{"user_id":"u","consent":{"analytics":false},"notice_version":"v3"}`,
		`{"batch":{}}`, `{"batch":[]}`, `[]`, `"`, `{"a":` + strings.Repeat("[", 50), `{"event":"\ud800","user_id":"\u0000"}`,
		"{\"event\":\"\xff\"}",
		`{"event":"a","user_id":"u","properties":{"x":1,"\u0078":2}}`, `{"batch":[{"event":"a","user_id":"u","n":[1e400]}],"batch":[]}`,
		`{"event":"a\n","user_id":"u\u0000","jurisdiction":"EU\t","event_id":"\u001f"}`, `{"type":"track","event":"e","messageId":"\r","userId":"u"}`, `{"properties":{"p":` + strings.Repeat(`{"a":`, 9) + `1` + strings.Repeat(`}`, 9) + `},"event":"e","user_id":"u"}`,
	} {
		f.Add([]byte(seed))
	}
	d := fuzzDecoder()
	s := &Server{purposes: map[string]bool{"necessary": true, "analytics": true, "marketing": true}, purposeList: "necessary, analytics, marketing"}
	decoders := map[string]func([]byte) (*decoded, *requestError){
		"native":   d.native,
		"batch":    func(b []byte) (*decoded, *requestError) { return d.segment(b, "") },
		"track":    func(b []byte) (*decoded, *requestError) { return d.segment(b, segTrack) },
		"page":     func(b []byte) (*decoded, *requestError) { return d.segment(b, segPage) },
		"identify": func(b []byte) (*decoded, *requestError) { return d.segment(b, segIdentify) },
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// One strict pass replaced utf8.Valid and json.Valid up front: text they refuse must still
		// get the whole body's 400, with their message, from every decoder.
		valid := utf8.Valid(body) && json.Valid(body)
		for name, decode := range decoders {
			res, rerr := decode(body)
			if !valid && (rerr == nil || rerr.msg != bodyMessage(body)) {
				t.Fatalf("%s: body that is not valid JSON text: %+v, want %q", name, rerr, bodyMessage(body))
			}
			if rerr != nil {
				if rerr.status != http.StatusBadRequest && rerr.status != http.StatusRequestEntityTooLarge || rerr.msg == "" {
					t.Fatalf("%s: bad request error %+v", name, rerr)
				}
				continue
			}
			checkDecoded(t, name, res)
		}
		if u, err := s.decodeConsent(body, d.received); !valid && (err == nil || err.Error() != bodyMessage(body)) {
			t.Fatalf("consent: body that is not valid JSON text: %v", err)
		} else if err == nil {
			if u.UserKey == "" || len(u.Consent) == 0 || u.UpdateID == "" {
				t.Fatalf("consent: accepted an incomplete update %+v", u)
			}
			for p := range u.Consent {
				if !s.purposes[p] {
					t.Fatalf("consent: accepted unknown purpose %q", p)
				}
			}
			if _, err := schemas.ConsentUpdates.Encode(u); err != nil {
				t.Fatalf("consent: %v", err)
			}
		}
	})
}

func checkDecoded(t *testing.T, name string, res *decoded) {
	t.Helper()
	if res.items < 1 || res.items > MaxBatchEvents || len(res.events)+len(res.rejected) != res.items {
		t.Fatalf("%s: %d items, %d events, %d rejected", name, res.items, len(res.events), len(res.rejected))
	}
	last := -1
	for _, r := range res.rejected {
		if r.Index <= last || r.Index >= res.items || !strings.HasPrefix(r.Error, fmt.Sprintf("event %d: ", r.Index)) {
			t.Fatalf("%s: bad rejection %+v", name, r)
		}
		last = r.Index
	}
	for _, ev := range res.events {
		for _, id := range []string{ev.EventID, ev.UserID, ev.AnonymousID, ev.Event, ev.Jurisdiction} {
			if hasControl(id) {
				t.Fatalf("%s: accepted a control character in %q", name, id)
			}
		}
		if ev.Event == "" || utf8.RuneCountInString(ev.Event) > maxEventName || ev.UserKey() == "" || ev.EventID == "" ||
			!ev.GPC || ev.Jurisdiction == "" || ev.TimestampMs == 0 || ev.ReceivedMs == 0 {
			t.Fatalf("%s: accepted an invalid event %+v", name, ev)
		}
		for field, m := range map[string]map[string]string{"context": ev.Context, "properties": ev.Properties} {
			for k, v := range m {
				if !json.Valid([]byte(v)) || !utf8.ValidString(k) {
					t.Fatalf("%s: %s.%s is not JSON text: %q", name, field, k, v)
				}
				var compact bytes.Buffer
				_ = json.Compact(&compact, []byte(v))
				if compact.String() != v {
					t.Fatalf("%s: %s.%s is not compact: %q", name, field, k, v)
				}
				if _, depth := skipValue([]byte(v), 0); depth > MaxValueDepth {
					t.Fatalf("%s: %s.%s nests %d deep", name, field, k, depth)
				}
			}
		}
		b, err := schemas.Events.Encode(ev)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		back, err := schemas.Events.Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if back.EventID != ev.EventID || back.Event != ev.Event || len(back.Properties) != len(ev.Properties) ||
			(back.Consent == nil) != (ev.Consent == nil) {
			t.Fatalf("%s: round trip changed the event: %+v -> %+v", name, ev, back)
		}
	}
}

// benchEvents returns a batch body of n realistic events of the native API and of Segment's.
func benchEvents(n int) (native, segment []byte) {
	var nb, sb strings.Builder
	nb.WriteString(`{"batch":[`)
	sb.WriteString(`{"sentAt":"2026-11-23T10:00:01Z","batch":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			nb.WriteByte(',')
			sb.WriteByte(',')
		}
		fmt.Fprintf(&nb, `{"event_id":"3f0c4e1a-%08d","event":"purchase","timestamp":"2026-11-23T10:00:00Z","user_id":"u-%d","anonymous_id":"a-%d",`+
			`"consent":{"necessary":true,"analytics":true,"marketing":false},"jurisdiction":"EU",`+
			`"context":{"page_url":"https://shop.example/checkout?step=2","user_agent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36","ip":"203.0.113.9"},`+
			`"properties":{"order_value":149.0,"currency":"EUR","email":"Ann@Example.com ","fbclid":"IwAR2xyz","items":[{"sku":"A-1","qty":2}]}}`, i, i%1000, i)
		fmt.Fprintf(&sb, `{"type":"track","messageId":"m-%08d","event":"Order Completed","userId":"u-%d","anonymousId":"a-%d","timestamp":"2026-11-23T10:00:00.000Z",`+
			`"properties":{"revenue":149.0,"currency":"EUR","products":[{"sku":"A-1","quantity":2}]},`+
			`"context":{"page":{"url":"https://shop.example/checkout","referrer":"https://ref.example/","title":"Checkout"},"userAgent":"Mozilla/5.0","ip":"203.0.113.9","locale":"en-US",`+
			`"library":{"name":"analytics.js","version":"5.0"},"consent":{"categoryPreferences":{"Analytics":true,"Advertising":false}}}}`, i, i%1000, i)
	}
	nb.WriteString(`]}`)
	sb.WriteString(`]}`)
	return []byte(nb.String()), []byte(sb.String())
}

// BenchmarkDecodeBatch measures decoding and validating a full batch of 500 events; the
// "+encode" variants add the Avro encoding each accepted event gets before it is produced.
func BenchmarkDecodeBatch(b *testing.B) {
	native, segment := benchEvents(MaxBatchEvents)
	d := fuzzDecoder()
	for _, bm := range []struct {
		name   string
		body   []byte
		decode func([]byte) (*decoded, *requestError)
		encode bool
	}{
		{"native", native, d.native, false},
		{"segment", segment, func(b []byte) (*decoded, *requestError) { return d.segment(b, "") }, false},
		{"native+encode", native, d.native, true},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bm.body)))
			for b.Loop() {
				res, rerr := bm.decode(bm.body)
				if rerr != nil || len(res.events) != MaxBatchEvents {
					b.Fatalf("decode: %v %+v", rerr, res.rejected)
				}
				if bm.encode {
					for _, ev := range res.events {
						if _, err := schemas.Events.Encode(ev); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			b.ReportMetric(float64(b.N*MaxBatchEvents)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// instantProducer acknowledges at once: it isolates the handler's own cost.
type instantProducer struct{}

func (instantProducer) ProduceSync(_ context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	out := make(kgo.ProduceResults, len(rs))
	for i, r := range rs {
		out[i].Record = r
	}
	return out
}

func (instantProducer) Ping(context.Context) error { return nil }

// BenchmarkServeBatch is one POST /v1/events of 500 events through the whole handler (auth,
// read, decode, encode, produce, reply), with a producer that acknowledges at once.
func BenchmarkServeBatch(b *testing.B) {
	native, _ := benchEvents(MaxBatchEvents)
	srv := New(testConfig(b, ""), instantProducer{}, zap.NewNop())
	b.ReportAllocs()
	b.SetBytes(int64(len(native)))
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(native))
		req.Header.Set("Authorization", "Bearer "+testKey)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
	b.ReportMetric(float64(b.N*MaxBatchEvents)/b.Elapsed().Seconds(), "events/s")
}
