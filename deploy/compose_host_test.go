package deploy

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/policy"
)

// TestComposeHostOverride: docker-compose.host.yml on top of docker-compose.yml puts every
// service that can start on the host network, publishes no port, and points the components at
// 127.0.0.1 on ports apart from the services-up pair (9092/9000/8123) and from each other.
func TestComposeHostOverride(t *testing.T) {
	opts, err := cli.NewProjectOptions([]string{"../docker-compose.yml", "../docker-compose.host.yml"},
		cli.WithName("tollgate"), cli.WithWorkingDirectory(".."))
	require.NoError(t, err)
	project, err := opts.LoadProject(context.Background())
	require.NoError(t, err, "docker-compose.yml + docker-compose.host.yml do not load")

	require.NotContains(t, project.Services, "ingest", "ingest (published port) must be parked in its profile")
	// A service left out by its profile still needs no bridge: compose v1 would create the
	// project's network for it.
	for name, svc := range project.DisabledServices {
		require.Equal(t, "host", svc.NetworkMode, "%s (not started) is not on the host network", name)
	}
	listens := map[string]string{}
	for name, svc := range project.Services {
		require.Equal(t, "host", svc.NetworkMode, "%s is not on the host network", name)
		require.Empty(t, svc.Ports, "%s publishes ports", name)
		for _, key := range []string{"TOLLGATE_METRICS_LISTEN", "TOLLGATE_INGEST_LISTEN"} {
			if v := svc.Environment[key]; v != nil {
				require.True(t, strings.HasPrefix(*v, "127.0.0.1:"), "%s %s=%s", name, key, *v)
				require.NotContains(t, listens, *v, "%s and %s both listen on %s", name, listens[*v], *v)
				listens[*v] = name
			}
		}
		if svc.Image == "tollgate:dev" && name != "standins" {
			require.Equal(t, "127.0.0.1:29092", *svc.Environment["TOLLGATE_KAFKA_BROKERS"], name)
			require.Equal(t, "127.0.0.1:29000", *svc.Environment["TOLLGATE_CLICKHOUSE_ADDR"], name)
			require.Equal(t, "policy.host.yaml", *svc.Environment["TOLLGATE_POLICY_FILE"], name)
		}
	}
	require.Contains(t, *project.Services["kafka"].Environment["KAFKA_LISTENERS"], "127.0.0.1:29092")
	require.Equal(t, "29000", *project.Services["clickhouse"].Environment["CLICKHOUSE_TCP_PORT"])

	// The host policy is the compose policy with the stand-ins on 127.0.0.1.
	hostPol, err := policy.Load("compose/policy.host.yaml")
	require.NoError(t, err)
	pol, err := policy.Load("compose/policy.yaml")
	require.NoError(t, err)
	require.Equal(t, pol.Names, hostPol.Names)
	for _, name := range hostPol.Names {
		for k, v := range hostPol.Destinations[name].Config {
			if s, ok := v.(string); ok && (k == "endpoint" || k == "url") {
				require.True(t, strings.HasPrefix(s, "http://127.0.0.1:291"), "%s %s=%s", name, k, s)
			}
		}
	}
	require.True(t, slices.Contains(project.Services["standins"].Command, "127.0.0.1:29101"))
}
