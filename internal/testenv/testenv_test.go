package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFailsLoudlyWithoutServices runs this test binary again with neither TOLLGATE_TEST_* set
// nor Docker to ask: the test that needs Kafka must FAIL, with the one line saying how to get
// it, and never skip. "No Docker" is TOLLGATE_TEST_DOCKER=off: testcontainers-go falls back to
// the default socket when DOCKER_HOST names a missing one, so a bogus DOCKER_HOST would not do.
func TestFailsLoudlyWithoutServices(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") == "1" {
		Kafka(t)
		t.Log("unreachable: Kafka(t) returned without services")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestFailsLoudlyWithoutServices$", "-test.v", "-test.count=1")
	cmd.Env = append(withoutEnv(os.Environ(), EnvKafka, EnvClickHouse),
		"TESTENV_CHILD=1", EnvDocker+"=off")
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "the child passed without services:\n%s", out)
	require.Contains(t, string(out), "--- FAIL: TestFailsLoudlyWithoutServices", "%s", out)
	require.NotContains(t, string(out), "--- SKIP", "%s", out)
	require.Contains(t, string(out), "no Kafka: set TOLLGATE_TEST_KAFKA=host:port", "%s", out)
	require.Contains(t, string(out), "make test-containers", "%s", out)
	require.NotContains(t, string(out), "unreachable", "%s", out)
}

// TestEnvWins: with TOLLGATE_TEST_KAFKA set the address is taken as it is, without asking Docker.
func TestEnvWins(t *testing.T) {
	if testing.Short() {
		t.Skip("Kafka(t) skips under -short")
	}
	t.Setenv(EnvKafka, "127.0.0.1:1")
	s := &service{env: EnvKafka, name: "Kafka", start: startKafka}
	require.Equal(t, "127.0.0.1:1", s.get(t))
}

func withoutEnv(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		keep := true
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				keep = false
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}
