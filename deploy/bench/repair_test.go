package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/policy"
)

// The bench's fixed policy is a valid policy that forwards what the demo policy blocks for
// want of a choice: every jurisdiction opt_out, under its own version.
func TestFixPolicy(t *testing.T) {
	b, err := os.ReadFile("../demo/policy.yaml")
	require.NoError(t, err)
	require.Contains(t, string(b), "{model: opt_in}")
	p, err := policy.Parse("fixed.yaml", []byte(fixPolicy(string(b))))
	require.NoError(t, err)
	require.Equal(t, "bench-fixed", p.Version)
	for name, j := range p.Jurisdictions {
		require.Equal(t, policy.OptOut, j.Model, name)
	}
	require.NotContains(t, fixPolicy(string(b)), "opt_in")
	require.Equal(t, 1, strings.Count(fixPolicy(string(b)), "version:"))
}
