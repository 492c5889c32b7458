package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/schemas"
)

// TestSDKResendsReachVendorsOnce: the real Segment Node SDK tracks each message twice under one
// messageId, and resends its whole batch when the first answer is a 503 that came after ingest had
// stored it (a proxy in front of ingest turns the first 2xx into a 503, as a lost answer would).
// Every vendor stand-in must receive each event exactly once, decisions must hold one row per
// event and destination (counted without FINAL: rows written, not rows left after merges), and
// the duplicates table must account for every resend the raw topic holds.
func TestSDKResendsReachVendorsOnce(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: -short runs unit tests only")
	}
	dir := npmCI(t, "sdk")
	p := startPipeline(t)
	proxy, lost := lossyProxy(t, p.ingestURL)
	run := time.Now().Format("150405.000")
	out := runNode(t, dir, "resend.mjs", proxy, run, nil)
	require.Equal(t, int32(1), lost.Load(), "the proxy turned one stored batch into a 503")

	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var m sdkMessage
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		ids = append(ids, m.MessageID)
	}
	require.Len(t, ids, 3)

	stored := rawCounts(t, p.cfg, ids)
	for _, id := range ids {
		require.GreaterOrEqual(t, stored[id], 3, "%s: twice by the SDK, then the batch again after the 503", id)
	}
	db := p.openDB()
	ctx := context.Background()
	require.Eventually(t, func() bool {
		var n uint64
		err := db.QueryRow(ctx, "SELECT count() FROM "+p.db+".deliveries FINAL WHERE status = 'delivered'").Scan(&n)
		return err == nil && n >= uint64(3*len(ids))
	}, 60*time.Second, 200*time.Millisecond, "deliveries never reached %d; logs:\n%s", 3*len(ids), p.logs)
	// GA4's Measurement Protocol carries no event id, so its stand-in cannot tell events apart;
	// the ledger's window for GA4 is measured by make chaos instead.
	for name, s := range map[string]interface{ EventIDs() []string }{"meta": p.meta, "ops": p.ops} {
		got := map[string]int{}
		for _, id := range s.EventIDs() {
			got[id]++
		}
		for _, id := range ids {
			require.Equal(t, 1, got[id], "%s received %s %d times", name, id, got[id])
		}
	}

	in := "('" + strings.Join(ids, "','") + "')"
	var decisions uint64
	require.NoError(t, db.QueryRow(ctx, "SELECT count() FROM "+p.db+".decisions WHERE event_id IN "+in).Scan(&decisions))
	require.Equal(t, uint64(3*len(ids)), decisions, "one decision per event and destination")
	require.Eventually(t, func() bool {
		rows, err := db.Query(ctx, "SELECT event_id, resends FROM "+p.db+".duplicates FINAL WHERE event_id IN "+in)
		if err != nil {
			return false
		}
		defer rows.Close()
		got := map[string]int{}
		for rows.Next() {
			var id string
			var n uint32
			if rows.Scan(&id, &n) != nil {
				return false
			}
			got[id] = int(n)
		}
		for _, id := range ids {
			if got[id] != stored[id]-1 {
				return false
			}
		}
		return true
	}, 60*time.Second, 200*time.Millisecond, "duplicates must count every resend on the raw topic: %v", stored)
}

// lossyProxy forwards requests to ingest; the first batch ingest accepts is answered 503, as if
// the answer had been lost, so the SDK sends the whole batch again.
func lossyProxy(t *testing.T, target string) (string, *atomic.Int32) {
	var lost atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 == 2 && strings.HasSuffix(r.URL.Path, "/batch") && lost.CompareAndSwap(0, 1) {
			w.Header().Set("Retry-After", "0")
			http.Error(w, "lost answer", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(answer)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &lost
}

// rawCounts counts the raw topic's records per event id (resends included).
func rawCounts(t *testing.T, cfg *config.Config, ids []string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kafka.NewClient(cfg, zap.NewNop())
	require.NoError(t, err)
	defer cl.Close()
	ends, err := kafka.EndOffsets(ctx, cl, cfg.Topic(config.TopicRaw))
	require.NoError(t, err)
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	got := map[string]int{}
	require.NoError(t, kafka.ReadToEnd(ctx, cfg, zap.NewNop(), cfg.Topic(config.TopicRaw), ends, func(r *kgo.Record) {
		if ev, err := schemas.Events.Decode(r.Value); err == nil && want[ev.EventID] {
			got[ev.EventID]++
		}
	}))
	return got
}
