package signals

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// stateVectors are strings written by IAB's own encoder (@iabgpp/cmpapi
// 3.2.0, GppModel: SaleOptOutNotice 1, SaleOptOut 2 = did not opt out, then
// SaleOptOut 1 = opted out) for the US state sections go-gpp v0.2.0 cannot
// decode.
var stateVectors = []struct {
	id              int
	name, kept, out string
}{
	{13, "usfl", "DBABAw~BEgAAABA", "DBABAw~BEQAAABA"},
	{14, "usmt", "DBABQw~BEgAAABA.QA", "DBABQw~BEQAAABA.QA"},
	{15, "usor", "DBABIw~BEgAAAABAA.QA", "DBABIw~BEQAAAABAA.QA"},
	{16, "ustx", "DBABEw~BEgAAAQA.QA", "DBABEw~BEQAAAQA.QA"},
	{17, "usde", "DBABUw~BEgAAAABAA.QA", "DBABUw~BEQAAAABAA.QA"},
	{18, "usia", "DBABCw~BEIAAAQA.QA", "DBABCw~BEEAAAQA.QA"},
	{19, "usne", "DBABSw~BEgAAAQA.QA", "DBABSw~BEQAAAQA.QA"},
	{20, "usnh", "DBABKw~BEgAAABA.QA", "DBABKw~BEQAAABA.QA"},
	{21, "usnj", "DBABAYA~BEgAAAAAQA.QA", "DBABAYA~BEQAAAAAQA.QA"},
	{22, "ustn", "DBABQYA~BEgAAAQA.QA", "DBABQYA~BEQAAAQA.QA"},
	{23, "usmn", "DBABIYA~BEgAAAQA.QA", "DBABIYA~BEQAAAQA.QA"},
	{24, "usmd", "DBABEYA~BQSA.QA", "DBABEYA~BQRA.QA"},
	{25, "usin", "DBABUYA~BQSA.AAA", "DBABUYA~BQRA.AAA"},
	{26, "usky", "DBABCYA~BQSA.AAA", "DBABCYA~BQRA.AAA"},
	{27, "usri", "DBABSYA~BQSA.AAA", "DBABSYA~BQRA.AAA"},
}

// An opt-out in any US state section reaches the decision: sections 23–27
// were once skipped as if they were not US sections at all.
func TestGPPStateOptOutsAreNeverIgnored(t *testing.T) {
	for _, v := range stateVectors {
		t.Run(v.name, func(t *testing.T) {
			for _, sid := range [][]int{{v.id}, nil} {
				g, err := ParseGPP(v.out, sid)
				require.NoError(t, err)
				require.Equal(t, []int{v.id}, g.Applicable)
				require.True(t, g.OptedOut(), "opted out in %s (gpp_sid %v)", v.name, sid)
			}
		})
	}
}

// A section id IAB adds later (28 here, with usri's body) is not ignored:
// tollgate cannot read it, so it counts as an opt-out.
func TestGPPUnknownSectionFailsClosed(t *testing.T) {
	g, err := ParseGPP("DBABKY~BQSA.AAA", nil)
	require.NoError(t, err)
	require.Equal(t, []int{28}, g.Applicable)
	require.Equal(t, []int{28}, g.Unreadable)
	require.True(t, g.OptedOut())
	require.True(t, USSection(28))
	require.False(t, USSection(2), "the EU TCF section is not a US one")
}
