package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/schemas"
)

// sdkMessage is one line of e2e/sdk/send.mjs's output: what an SDK sent.
type sdkMessage struct {
	SDK       string          `json:"sdk"`
	Type      string          `json:"type"`
	MessageID string          `json:"messageId"`
	UserKey   string          `json:"userKey"`
	Prefs     map[string]bool `json:"prefs"`
	PageURL   string          `json:"pageUrl"`
}

// TestSegmentAndRudderStackSDKs points the real @segment/analytics-node and
// @rudderstack/rudder-sdk-node clients (from npm, e2e/sdk/package-lock.json) at ingest and checks
// that every message reaches the raw topic under its messageId, with its consent categories
// mapped to purposes through segment_categories, and gets the decisions docs/consent.md gives.
func TestSegmentAndRudderStackSDKs(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: -short runs unit tests only")
	}
	dir := npmCI(t, "sdk")
	p := startPipeline(t)
	run := time.Now().Format("150405.000")
	out := runNode(t, dir, "send.mjs", p.ingestURL, run, p.logs)

	sent := map[string]sdkMessage{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var m sdkMessage
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		require.NotEmpty(t, m.MessageID)
		require.NotContains(t, sent, m.MessageID, "duplicate message id")
		sent[m.MessageID] = m
	}
	require.Len(t, sent, 10, "5 calls per SDK; output:\n%s", out)

	got := readRawEvents(t, p.cfg, len(sent))
	want := map[string][2]string{}
	for id, m := range sent {
		ev, ok := got[id]
		require.True(t, ok, "%s message %s (%s) is not on the raw topic under its messageId", m.SDK, id, m.Type)
		assert.Equal(t, m.UserKey, ev.UserKey(), id)
		assert.Equal(t, purposes(m.Prefs), ev.Consent, "%s: categoryPreferences %v", id, m.Prefs)
		assert.Equal(t, strconv.Quote(m.PageURL), ev.Context["page_url"], "%s: context values are JSON texts", id)
		assert.Contains(t, ev.Context["library"], "analytics-node", "%s: context.library is kept", id)
		assert.False(t, ev.GPC, id)
		switch m.Type {
		case "page", "identify":
			assert.Equal(t, m.Type, ev.Event, id)
		default:
			assert.NotEmpty(t, ev.Event, id)
		}
		for _, dest := range []string{"ga4", "meta", "ops"} {
			want[id+"/"+dest] = expectSDK(m, dest)
		}
	}
	checkDecisions(t, p, want)
	checkLagMetrics(t, p)
}

// checkLagMetrics: `tollgate run` exports every consumer group's lag on ingest's /metrics, and
// the processor has caught up with the raw topic once its decisions are in ClickHouse.
func checkLagMetrics(t *testing.T, p *pipeline) {
	t.Helper()
	caughtUp := fmt.Sprintf("tollgate_consumer_group_lag{group=%q,topic=%q} 0", p.prefix+"processor", p.prefix+"events.raw")
	var body string
	require.Eventually(t, func() bool {
		resp, err := http.Get(p.ingestURL + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return strings.Contains(body, caughtUp)
	}, 30*time.Second, 200*time.Millisecond, "no %q on /metrics", caughtUp)
	for _, g := range []string{"processor", "audit", "sink.ga4", "sink.meta", "sink.ops"} {
		require.Contains(t, body, fmt.Sprintf("tollgate_consumer_group_lag_up{group=%q} 1", p.prefix+g))
	}
}

// purposes maps the demo policy's Segment categories as docs/api.md says.
func purposes(prefs map[string]bool) map[string]bool {
	if prefs == nil {
		return nil
	}
	to := map[string]string{"Analytics": "analytics", "Advertising": "marketing", "Functional": "necessary"}
	out := map[string]bool{}
	for cat, v := range prefs {
		out[to[cat]] = v
	}
	return out
}

// expectSDK is docs/consent.md for one SDK message under the e2e policy (default jurisdiction:
// opt_in, no GPC).
func expectSDK(m sdkMessage, dest string) [2]string {
	p := purposes(m.Prefs)
	switch {
	case dest == "ops":
		return [2]string{"forwarded", "necessary"}
	case dest == "ga4" && !p["analytics"], dest == "meta" && !p["marketing"]:
		return [2]string{"blocked", "no_consent"}
	case dest == "meta" && strings.Contains(m.PageURL, "/pharmacy"):
		return [2]string{"blocked", "sensitive"}
	}
	return [2]string{"forwarded", "consented"}
}

// readRawEvents reads the raw topic until it holds want events, by event id.
func readRawEvents(t *testing.T, cfg *config.Config, want int) map[string]schemas.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kafka.NewClient(cfg, zap.NewNop())
	require.NoError(t, err)
	defer cl.Close()
	var got map[string]schemas.Event
	require.Eventually(t, func() bool {
		ends, err := kafka.EndOffsets(ctx, cl, cfg.Topic(config.TopicRaw))
		if err != nil {
			return false
		}
		got = map[string]schemas.Event{}
		err = kafka.ReadToEnd(ctx, cfg, zap.NewNop(), cfg.Topic(config.TopicRaw), ends, func(r *kgo.Record) {
			if ev, err := schemas.Events.Decode(r.Value); err == nil {
				got[ev.EventID] = ev
			}
		})
		return err == nil && len(got) >= want
	}, 30*time.Second, 200*time.Millisecond, "raw topic never held %d events", want)
	return got
}

// runNode runs one of e2e/sdk's scripts against ingest at host and returns what it printed;
// logs (ingest's, or nil) go into the failure message.
func runNode(t *testing.T, dir, script, host, run string, logs fmt.Stringer) []byte {
	t.Helper()
	cmd := exec.Command("node", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TG_HOST="+host, "TG_WRITE_KEY="+writeKey, "RUN="+run)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := "node " + script + ": " + stderr.String()
		if logs != nil {
			msg += "\ningest logs:\n" + logs.String()
		}
		require.NoError(t, err, msg)
	}
	return out
}

// installMu serialises the installs (npm ci, Chromium) of scenarios running in parallel.
var installMu sync.Mutex

// npmCI installs e2e/<name>'s locked npm packages with `npm ci` unless node_modules already
// matches package-lock.json (a stamp of its hash), and returns the folder. node_modules is
// gitignored, so a fresh clone installs once and later runs reuse it.
func npmCI(t *testing.T, name string) string {
	t.Helper()
	installMu.Lock() // scenarios run in parallel: two npm ci in one folder would clash
	defer installMu.Unlock()
	dir, err := filepath.Abs(name)
	require.NoError(t, err)
	_, err = exec.LookPath("npm")
	require.NoError(t, err, "npm is required for %s (install Node.js 20+ with npm)", name)
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	require.NoError(t, err)
	sum := sha256.Sum256(lock)
	stamp := filepath.Join(dir, "node_modules", ".tollgate-lock-sha256")
	if b, err := os.ReadFile(stamp); err == nil && string(b) == hex.EncodeToString(sum[:]) {
		return dir
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "npm ci in %s:\n%s", dir, out)
	require.NoError(t, os.WriteFile(stamp, []byte(hex.EncodeToString(sum[:])), 0o644))
	return dir
}
