package policy

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOnDoubt(t *testing.T) {
	ga4 := strings.Replace(good, "    type: meta_capi\n", "    type: ga4\n", 1)
	for _, tc := range []struct {
		src, onDoubt string
		resend       bool
	}{
		{good, "", true}, // Meta dedups by event id: always sent again
		{strings.Replace(good, "    sale: true\n", "    sale: true\n    on_doubt: skip\n", 1), "skip", true},
		{ga4, "", false}, // default skip
		{strings.Replace(ga4, "    sale: true\n", "    sale: true\n    on_doubt: resend\n", 1), "resend", true},
	} {
		p, err := Parse("p.yaml", []byte(tc.src))
		require.NoError(t, err)
		require.Equal(t, tc.onDoubt, p.Destinations["meta"].OnDoubt)
		require.Equal(t, tc.resend, p.Destinations["meta"].ResendInDoubt(), tc.src)
	}
	_, err := Parse("p.yaml", []byte(strings.Replace(ga4, "    sale: true\n", "    sale: true\n    on_doubt: maybe\n", 1)))
	require.ErrorContains(t, err, `p.yaml:11: destinations.meta.on_doubt: must be "skip" or "resend", not "maybe"`)
}
