package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBadConfigStopsWithOneLine checks that each kind of broken config or policy stops the binary
// before anything starts, with one line naming the file and the problem.
func TestBadConfigStopsWithOneLine(t *testing.T) {
	t.Parallel()
	good := strings.NewReplacer("%q", `"http://127.0.0.1:9"`, "%s", "http://127.0.0.1:9").Replace(policyYAML)
	cases := []struct {
		name, policy, config, want string
		env                        []string
	}{
		{name: "unknown destination type", policy: strings.Replace(good, "type: ga4", "type: snapchat", 1),
			want: `policy.yaml:10: destinations.ga4.type: unknown destination type "snapchat"`},
		{name: "unknown field path", policy: strings.Replace(good, "properties.session_id", "session.id", 1),
			want: `destinations.ga4.fields: unknown field path "session.id"`},
		{name: "bad regex", policy: strings.Replace(good, `"(?i)/(pharmacy|clinic|health|diagnos)"`, `"(unclosed"`, 1),
			want: `sensitive[0].pattern: bad regular expression`},
		{name: "missing secret variable", policy: good, env: []string{"GA4_API_SECRET=", "OPS_HOOK_SECRET=x"},
			want: `META_TOKEN`},
		{name: "unknown config key", policy: good, config: "kafka:\n  brokerz: [a:1]\ningest:\n  write_keys: [k]\n",
			want: `config.yaml: line 2: field brokerz not found`},
		{name: "no write keys", policy: good, config: "ingest:\n  listen: 127.0.0.1:1\n",
			want: `config.yaml:2: ingest.write_keys: at least one write key is required`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := tc.config
			if cfg == "" {
				cfg = "ingest:\n  write_keys: [k]\n"
			}
			writeFile(t, filepath.Join(dir, "config.yaml"), cfg)
			writeFile(t, filepath.Join(dir, "policy.yaml"), tc.policy)
			cmd := exec.Command(binary, "run", "--config", filepath.Join(dir, "config.yaml"))
			cmd.Env = append([]string{"PATH=/usr/bin:/bin", "GA4_API_SECRET=a", "META_TOKEN=b", "OPS_HOOK_SECRET=c"}, tc.env...)
			if tc.name == "missing secret variable" {
				cmd.Env = []string{"PATH=/usr/bin:/bin", "GA4_API_SECRET=a", "OPS_HOOK_SECRET=c"}
			}
			out, err := cmd.CombinedOutput()
			require.Error(t, err, "tollgate started with a broken %s", tc.name)
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			require.Len(t, lines, 1, "want one line, got:\n%s", out)
			require.Contains(t, lines[0], tc.want)
			if tc.config == "" {
				require.Contains(t, lines[0], "policy.yaml")
			}
		})
	}
}
