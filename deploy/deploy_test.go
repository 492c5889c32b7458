// Package deploy holds no code: its tests keep the deployment files honest without Docker or a
// cluster. docker-compose.yml is loaded with compose-go (the loader of `docker compose`), the
// Kubernetes manifests are parsed and cross-checked (kinds, names, references), and the Grafana
// dashboard may only chart metrics the code exports.
package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/internal/policy"
)

// components are the tollgate services/Deployments: every component on its own.
var components = []string{"ingest", "processor", "sink-ga4", "sink-meta", "sink-ops", "audit"}

// commands are the tollgate subcommands a container may run.
var commands = []string{"run", "ingest", "process", "sink", "audit", "standins"}

func TestComposeFile(t *testing.T) {
	opts, err := cli.NewProjectOptions([]string{"../docker-compose.yml"},
		cli.WithName("tollgate"), cli.WithWorkingDirectory(".."), cli.WithProfiles([]string{"monitoring"}))
	require.NoError(t, err)
	project, err := opts.LoadProject(context.Background())
	require.NoError(t, err, "docker-compose.yml does not load")

	require.Equal(t, "apache/kafka:4.1.1", project.Services["kafka"].Image)
	require.True(t, strings.HasPrefix(project.Services["clickhouse"].Image, "clickhouse/clickhouse-server:"))
	for _, name := range append(slices.Clone(components), "standins") {
		svc, ok := project.Services[name]
		require.True(t, ok, "service %s is missing", name)
		require.NotNil(t, svc.Build, "%s is built from the repo", name)
		require.FileExists(t, filepath.Join(svc.Build.Context, "Dockerfile"), name)
		require.NotEmpty(t, svc.Command, name)
		require.Contains(t, commands, svc.Command[0], "%s runs an unknown command", name)
		if name == "standins" {
			continue
		}
		for _, dep := range []string{"kafka", "clickhouse"} {
			require.Equal(t, "service_healthy", svc.DependsOn[dep].Condition, "%s waits for %s", name, dep)
		}
		require.Len(t, svc.Volumes, 1, name)
		require.Equal(t, "/etc/tollgate", svc.Volumes[0].Target, name)
		require.Equal(t, []string{"--config", "/etc/tollgate/config.yaml"}, []string(svc.Command[1:3]), name)
		if strings.HasPrefix(name, "sink-") {
			require.Equal(t, []string{"--destination", strings.TrimPrefix(name, "sink-")}, []string(svc.Command[3:]), name)
		}
	}
	require.Contains(t, project.Services["ingest"].Ports[0].Published, "8080")

	// The mounted config and policy load, and name the compose services.
	cfg := loadConfig(t, "compose/config.yaml", "compose/policy.yaml")
	require.Equal(t, []string{"kafka:9092"}, cfg.Kafka.Brokers)
	require.Equal(t, "clickhouse:9000", cfg.ClickHouse.Addr)
	require.True(t, cfg.Ingest.DemoPage)
	for _, name := range cfg.Policy.Names {
		_, ok := project.Services["sink-"+name]
		require.True(t, ok, "destination %s has no sink service", name)
	}
	for _, env := range secretEnvs(cfg.Policy) {
		require.Contains(t, project.Services["processor"].Environment, env, "compose sets %s", env)
	}
}

// TestDockerComposeConfig runs `docker compose config` where the Docker client has the compose
// plugin; the compose-go test above is the check everywhere else.
func TestDockerComposeConfig(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("no docker client")
	}
	if err := exec.Command("docker", "compose", "version").Run(); err != nil {
		t.Skip("docker client without the compose plugin")
	}
	out, err := exec.Command("docker", "compose", "-f", "../docker-compose.yml", "--profile", "monitoring", "config", "--quiet").CombinedOutput()
	require.NoError(t, err, "docker compose config:\n%s", out)
}

// k8sObject is the part of a Kubernetes object the checks read.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       yaml.Node         `yaml:"spec"`
	file       string
}

type podSpec struct {
	Containers []struct {
		Image   string   `yaml:"image"`
		Args    []string `yaml:"args"`
		EnvFrom []struct {
			SecretRef struct{ Name string } `yaml:"secretRef"`
		} `yaml:"envFrom"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
	} `yaml:"containers"`
	Volumes []struct {
		Name      string                `yaml:"name"`
		ConfigMap struct{ Name string } `yaml:"configMap"`
	} `yaml:"volumes"`
}

type deploymentSpec struct {
	Selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"metadata"`
		Spec podSpec `yaml:"spec"`
	} `yaml:"template"`
}

type hpaSpec struct {
	ScaleTargetRef struct{ Kind, Name string } `yaml:"scaleTargetRef"`
	MinReplicas    int                         `yaml:"minReplicas"`
	MaxReplicas    int                         `yaml:"maxReplicas"`
	Metrics        []struct {
		Type     string `yaml:"type"`
		External struct {
			Metric struct {
				Name     string `yaml:"name"`
				Selector struct {
					MatchLabels map[string]string `yaml:"matchLabels"`
				} `yaml:"selector"`
			} `yaml:"metric"`
		} `yaml:"external"`
	} `yaml:"metrics"`
}

func TestKubernetesManifests(t *testing.T) {
	objs := readManifests(t, "kubernetes")
	byKind := map[string]map[string]k8sObject{}
	for _, o := range objs {
		require.NotEmpty(t, o.APIVersion, "%s: apiVersion", o.file)
		require.NotEmpty(t, o.Metadata.Name, "%s: metadata.name", o.file)
		if o.Kind != "Namespace" {
			require.Equal(t, "tollgate", o.Metadata.Namespace, "%s %s", o.Kind, o.Metadata.Name)
		}
		if byKind[o.Kind] == nil {
			byKind[o.Kind] = map[string]k8sObject{}
		}
		require.NotContains(t, byKind[o.Kind], o.Metadata.Name, "two %s named %s", o.Kind, o.Metadata.Name)
		byKind[o.Kind][o.Metadata.Name] = o
	}
	require.Contains(t, byKind["Namespace"], "tollgate")

	cm := byKind["ConfigMap"]["tollgate-config"]
	dir := t.TempDir()
	for _, f := range []string{"config.yaml", "policy.yaml"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), []byte(cm.Data[f]), 0o600), "ConfigMap key %s", f)
	}
	cfg := loadConfig(t, filepath.Join(dir, "config.yaml"), filepath.Join(dir, "policy.yaml"))
	secret := byKind["Secret"]["tollgate-vendor-tokens"]
	for _, env := range secretEnvs(cfg.Policy) {
		require.Contains(t, secret.StringData, env, "the Secret holds every *_env the policy names")
	}

	require.ElementsMatch(t, components, keys(byKind["Deployment"]), "one Deployment per component")
	for name, o := range byKind["Deployment"] {
		checkDeployment(t, name, o, cfg, byKind)
	}
	for name, o := range byKind["HorizontalPodAutoscaler"] {
		var spec hpaSpec
		require.NoError(t, o.Spec.Decode(&spec), name)
		require.Equal(t, "Deployment", spec.ScaleTargetRef.Kind, name)
		require.Contains(t, byKind["Deployment"], spec.ScaleTargetRef.Name, "HPA %s scales a missing Deployment", name)
		require.LessOrEqual(t, spec.MinReplicas, spec.MaxReplicas, name)
		require.NotEmpty(t, spec.Metrics, name)
		for _, m := range spec.Metrics {
			if m.Type != "External" {
				continue
			}
			require.Equal(t, "tollgate_consumer_group_lag", m.External.Metric.Name, name)
			require.Contains(t, consumerGroups(cfg), m.External.Metric.Selector.MatchLabels["group"], "HPA %s: lag of an unknown group", name)
			require.LessOrEqual(t, spec.MaxReplicas, cfg.Kafka.Partitions, "HPA %s: replicas beyond the partitions sit idle", name)
		}
	}
	require.Contains(t, byKind["HorizontalPodAutoscaler"], "processor")

	var kust struct{ Resources []string }
	b, err := os.ReadFile("kubernetes/kustomization.yaml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &kust))
	files, err := filepath.Glob("kubernetes/*.yaml")
	require.NoError(t, err)
	var want []string
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			want = append(want, filepath.Base(f))
		}
	}
	require.ElementsMatch(t, want, kust.Resources, "kustomization.yaml lists every manifest")
}

func checkDeployment(t *testing.T, name string, o k8sObject, cfg *config.Config, byKind map[string]map[string]k8sObject) {
	t.Helper()
	var spec deploymentSpec
	require.NoError(t, o.Spec.Decode(&spec), name)
	for k, v := range spec.Selector.MatchLabels {
		require.Equal(t, v, spec.Template.Metadata.Labels[k], "%s: selector matches the pod labels", name)
	}
	pod := spec.Template.Spec
	require.Len(t, pod.Containers, 1, name)
	c := pod.Containers[0]
	require.NotEmpty(t, c.Image, name)
	require.Contains(t, commands, c.Args[0], name)
	require.Equal(t, []string{"--config", "/etc/tollgate/config.yaml"}, c.Args[1:3], name)
	if dest, ok := strings.CutPrefix(name, "sink-"); ok {
		require.Equal(t, []string{"--destination", dest}, c.Args[3:], name)
		require.Contains(t, cfg.Policy.Destinations, dest, "%s: no such destination in the policy", name)
	}
	for _, e := range c.EnvFrom {
		require.Contains(t, byKind["Secret"], e.SecretRef.Name, "%s: envFrom a missing Secret", name)
	}
	require.Len(t, c.VolumeMounts, 1, name)
	require.Equal(t, "/etc/tollgate", c.VolumeMounts[0].MountPath, name)
	vol := pod.Volumes[slices.IndexFunc(pod.Volumes, func(v struct {
		Name      string                `yaml:"name"`
		ConfigMap struct{ Name string } `yaml:"configMap"`
	}) bool {
		return v.Name == c.VolumeMounts[0].Name
	})]
	require.Contains(t, byKind["ConfigMap"], vol.ConfigMap.Name, "%s: mounts a missing ConfigMap", name)
	// Prometheus scrapes the port that serves /metrics: ingest's own listener, else metrics.listen.
	wantPort := "9090"
	if name == "ingest" {
		wantPort = "8080"
	} else {
		require.True(t, strings.HasSuffix(cfg.Metrics.Listen, ":"+wantPort), "metrics.listen is %q", cfg.Metrics.Listen)
	}
	require.Equal(t, wantPort, spec.Template.Metadata.Annotations["prometheus.io/port"], name)
}

// consumerGroups are the groups of a config, as the components name them.
func consumerGroups(cfg *config.Config) []string {
	groups := []string{cfg.Kafka.TopicPrefix + "processor", cfg.Kafka.TopicPrefix + "audit"}
	for _, d := range cfg.Policy.Names {
		groups = append(groups, cfg.Kafka.TopicPrefix+"sink."+d)
	}
	return groups
}

func readManifests(t *testing.T, dir string) []k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	require.NoError(t, err)
	var objs []k8sObject
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o k8sObject
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, f)
			if o.Kind == "" {
				continue // an empty document
			}
			o.file = f
			objs = append(objs, o)
		}
	}
	require.NotEmpty(t, objs)
	return objs
}

// loadConfig loads a config and its policy the way the binary does (config.Load), with the
// policy taken from policyPath.
func loadConfig(t *testing.T, path, policyPath string) *config.Config {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	cfg, err := config.Parse(path, b, func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	cfg.Policy, err = policy.Load(policyPath)
	require.NoError(t, err)
	return cfg
}

// secretEnvs are the environment variables the policy's destinations name for their secrets.
func secretEnvs(p *policy.Policy) []string {
	var out []string
	for _, name := range p.Names {
		for k, v := range p.Destinations[name].Config {
			if s, ok := v.(string); ok && strings.HasSuffix(k, "_env") {
				out = append(out, s)
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestGrafanaDashboard: the dashboard parses, and every tollgate metric it charts is one the
// code registers (a renamed metric would leave a silent empty panel).
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/tollgate.json")
	require.NoError(t, err)
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(b, &dash))
	require.Equal(t, "tollgate", dash.UID)
	exported := exportedMetrics(t)
	metricName := regexp.MustCompile(`\btollgate_[a-z_]+`)
	charted := map[string]bool{}
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		for _, tg := range p.Targets {
			for _, m := range metricName.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
				assert.Contains(t, exported, base, "panel %q charts %s, which no code exports", p.Title, m)
				charted[base] = true
			}
		}
	}
	for _, m := range []string{"tollgate_consumer_group_lag", "tollgate_ingest_accepted_events_total", "tollgate_processor_decisions_total",
		"tollgate_received_events_total", "tollgate_sent_events_total", "tollgate_errors_total", "tollgate_discarded_events_total",
		"tollgate_sink_sent_events_total", "tollgate_audit_rows_written_total", "tollgate_kafka_buffered_produce_records_total",
		"tollgate_processor_held_events", "tollgate_processor_hold_releases_total", "tollgate_processor_oldest_hold_seconds"} {
		require.True(t, charted[m], "the dashboard charts %s", m)
	}
}

// exportedMetrics finds the metric names registered in the repo's Go code (string literals).
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	lit := regexp.MustCompile(`"(tollgate_[a-z_]+)"`)
	out := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != ".." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllSubmatch(b, -1) {
			out[string(m[1])] = true
		}
		return nil
	})
	require.NoError(t, err)
	for name := range kafkaClientMetrics(t) {
		out[name] = true
	}
	return out
}

// kafkaClientMetrics are the franz-go client metrics (plugin/kprom) every tollgate Kafka client
// registers; their names are built by kprom, not written in our code. A client registers them
// when it is created, before it connects, so no broker is needed.
func kafkaClientMetrics(t *testing.T) map[string]bool {
	t.Helper()
	cl, err := kafka.NewClient(&config.Config{Kafka: config.Kafka{Brokers: []string{"127.0.0.1:1"}}}, zap.NewNop())
	require.NoError(t, err)
	defer cl.Close()
	mfs, err := prometheus.DefaultGatherer.Gather()
	require.NoError(t, err)
	out := map[string]bool{}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "tollgate_kafka_") {
			out[mf.GetName()] = true
		}
	}
	require.NotEmpty(t, out, "kprom registers the client metrics")
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
