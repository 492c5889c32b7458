package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/cmd/tollgate/policytest"
	"github.com/tollgate-dev/tollgate/internal/config"
)

func demoConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load("../../deploy/demo/config.yaml")
	require.NoError(t, err)
	return cfg
}

// The shipped cases cover every rule of the demo policy and must pass: `make test` runs this.
func TestPolicyTestDemoCases(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, runPolicyTest("../../deploy/demo/policy-tests", demoConfig(t).Policy, &out))
	require.Regexp(t, `^\d+ passed, 0 failed\n$`, out.String())
	for _, reason := range []string{"necessary", "consented", "no_consent", "opted_out", "withdrawn", "gpc", "sensitive", "erased"} {
		require.Contains(t, demoCaseReasons(t), reason, "no shipped case covers reason %s", reason)
	}
}

func TestPolicyTestWrongCaseFails(t *testing.T) {
	var out bytes.Buffer
	err := runPolicyTest("testdata/policy-tests-wrong", demoConfig(t).Policy, &out)
	require.Error(t, err)
	require.Equal(t, 1, exitCode(err))
	require.Equal(t, "FAIL 02-wrong.yaml: ga4: want blocked/gpc, got forwarded/consented\n1 passed, 1 failed\n", out.String())
}

func TestPolicyTestBadCaseNamesFileLineField(t *testing.T) {
	var out bytes.Buffer
	err := runPolicyTest("testdata/policy-tests-bad", demoConfig(t).Policy, &out)
	require.Error(t, err)
	require.Contains(t, err.Error(), "testdata/policy-tests-bad/01-bad.yaml:5: expect.ga4.reason")
}

func TestPolicyExplainEveryReason(t *testing.T) {
	for _, tc := range []struct{ event, want string }{
		{`{"event":"page","user_id":"u","jurisdiction":"EU"}`, "ga4 (purpose analytics, jurisdiction EU, model opt_in): blocked, no_consent"},
		{`{"event":"page","user_id":"u","jurisdiction":"US-CA","consent":{"marketing":false}}`, "meta (purpose marketing, jurisdiction US-CA, model opt_out): blocked, opted_out"},
	} {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		f := t.TempDir() + "/e.json"
		require.NoError(t, writeFile(f, tc.event))
		root.SetArgs([]string{"policy", "explain", "--config", "../../deploy/demo/config.yaml", "--event", f})
		require.NoError(t, root.Execute())
		require.Contains(t, out.String(), tc.want)
		require.Contains(t, out.String(), "DECIDES")
	}
}

// The demo policy holds (hold: window 30s): explain says which destinations would wait for the
// choice, in the text and in the JSON; an event that carries a choice is not held.
func TestPolicyExplainSaysWhenHeld(t *testing.T) {
	explain := func(event string, format string) string {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		f := t.TempDir() + "/e.json"
		require.NoError(t, writeFile(f, event))
		root.SetArgs([]string{"policy", "explain", "--config", "../../deploy/demo/config.yaml", "--event", f, "--format", format})
		require.NoError(t, root.Execute())
		return out.String()
	}
	text := explain(`{"event":"page","anonymous_id":"a","jurisdiction":"EU"}`, "text")
	require.Contains(t, text, "ga4 (purpose analytics, jurisdiction EU, model opt_in): blocked, no_consent\n"+
		"  HELD: the user has made no choice about analytics yet; the policy's hold keeps the event up to 30s for it,\n"+
		"  then decides it under the choice, or as above (blocked, no_consent) if none arrives\n")
	require.Equal(t, 2, strings.Count(text, "HELD:"), "ga4 and meta, not the necessary ops")

	var js struct {
		Destinations []struct {
			Destination string
			HoldWindow  string `json:"hold_window"`
			Held        bool
		}
	}
	require.NoError(t, json.Unmarshal([]byte(explain(`{"event":"page","anonymous_id":"a","jurisdiction":"EU"}`, "json")), &js))
	held := map[string]string{}
	for _, d := range js.Destinations {
		if d.Held {
			held[d.Destination] = d.HoldWindow
		}
	}
	require.Equal(t, map[string]string{"ga4": "30s", "meta": "30s"}, held)

	require.NotContains(t, explain(`{"event":"page","anonymous_id":"a","jurisdiction":"EU","consent":{"analytics":true,"marketing":false}}`, "text"), "HELD")
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// demoCaseReasons is every reason the shipped cases expect.
func demoCaseReasons(t *testing.T) []string {
	t.Helper()
	cases, err := policytest.Load("../../deploy/demo/policy-tests", demoConfig(t).Policy)
	require.NoError(t, err)
	var out []string
	for _, c := range cases {
		for _, e := range c.Expect {
			out = append(out, e.Reason)
		}
	}
	return out
}
