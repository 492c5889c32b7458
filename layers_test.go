// Package tollgate_test holds the module's layering rules, checked on the import graph that
// `go list` reports, so a package that reaches across a layer fails the build's tests instead of
// waiting for a review to notice.
package tollgate_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/tollgate-dev/tollgate"

// engineOf are the packages under sinks/ that are not vendors: the engine, the shared test suite
// and the registry (which imports every vendor by design). Every other package under sinks/ is
// a vendor or the sdk they plug into.
var engineOf = []string{"sinks/delivery", "sinks/sinktest", "sinks/registry"}

// TestLayers holds the two rules of ARCHITECTURE.md: nothing under internal/ depends on ingest,
// processors or sinks (internal/ is plumbing the stages share, not a stage), and no vendor
// package, nor the sdk, depends on internal/config (a vendor sees the policy and schemas only;
// the engine and the command translate the config into values). Dependencies are transitive:
// a vendor reaching config through the sdk counts.
func TestLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Deps \" \"}}",
		"./internal/...", "./sinks/...").Output()
	require.NoError(t, err, "go list: %s", exitStderr(err))
	deps := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		deps[fields[0]] = fields[1:]
	}
	require.Contains(t, deps, module+"/sinks/sdk", "go list reported no sdk: the patterns are wrong")
	require.Empty(t, violations(deps))
}

// The rules catch a breach, direct or through another package.
func TestLayersCatchABreach(t *testing.T) {
	got := violations(map[string][]string{
		module + "/internal/lag":    {module + "/internal/config", module + "/sinks/sdk"},
		module + "/internal/kafka":  {module + "/processors/consent"},
		module + "/sinks/meta":      {module + "/sinks/sdk", module + "/internal/config"},
		module + "/sinks/delivery":  {module + "/internal/config"},
		module + "/sinks/registry":  {module + "/internal/config"},
		module + "/internal/policy": {module + "/schemas"},
	})
	require.Equal(t, []string{
		"internal/kafka depends on processors/consent",
		"internal/lag depends on sinks/sdk",
		"sinks/meta depends on internal/config",
	}, got)
}

// violations lists every breach of the rules in deps (a package's path → its dependencies).
func violations(deps map[string][]string) []string {
	var out []string
	for pkg, ds := range deps {
		p := strings.TrimPrefix(pkg, module+"/")
		for _, d := range ds {
			d, ours := strings.CutPrefix(d, module+"/")
			if !ours {
				continue
			}
			if breach(p, d) {
				out = append(out, p+" depends on "+d)
			}
		}
	}
	slices.Sort(out)
	return out
}

func breach(pkg, dep string) bool {
	if under(pkg, "internal") {
		return under(dep, "ingest") || under(dep, "processors") || under(dep, "sinks")
	}
	vendor := under(pkg, "sinks") && !slices.ContainsFunc(engineOf, func(e string) bool { return under(pkg, e) })
	return vendor && under(dep, "internal/config")
}

// under reports whether path is dir or below it.
func under(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

func exitStderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
