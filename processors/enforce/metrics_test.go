package enforce

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	stagemetrics "github.com/tollgate-dev/tollgate/internal/metrics"
	"github.com/tollgate-dev/tollgate/schemas"
)

// The shared stage metrics count a transaction's decisions only once it commits.
func TestTallyCountsCommittedTransactionsOnly(t *testing.T) {
	sent := stagemetrics.Sent.WithLabelValues(stagemetrics.StageProcessor, "tally-dest")
	blocked := stagemetrics.Discarded.WithLabelValues(stagemetrics.StageProcessor, "tally-reason")
	before := [2]float64{testutil.ToFloat64(sent), testutil.ToFloat64(blocked)}
	var tl tally
	tl.reset()
	tl.decided(&schemas.Decision{Destination: "tally-dest", Outcome: "forwarded"})
	tl.decided(&schemas.Decision{Destination: "tally-dest", Outcome: "blocked", Reason: "tally-reason"})
	tl.reset() // aborted: decided again in the next transaction
	tl.decided(&schemas.Decision{Destination: "tally-dest", Outcome: "forwarded"})
	tl.decided(&schemas.Decision{Destination: "tally-dest", Outcome: "blocked", Reason: "tally-reason"})
	tl.committed(1)
	require.Equal(t, [2]float64{before[0] + 1, before[1] + 1}, [2]float64{testutil.ToFloat64(sent), testutil.ToFloat64(blocked)})
}
