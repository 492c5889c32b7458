package delivery

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// A request is in doubt only when it may have reached the vendor: it went out whole and got no
// answer, or a 2xx whose body broke off. A refused connection (nothing written) and an answer
// the vendor gave (a 5xx) are plain temporary failures.
func TestInDoubt(t *testing.T) {
	for _, tc := range []struct {
		v     sdk.Verdict
		wrote bool
		want  bool
	}{
		{sdk.Verdict{Class: sdk.Retry, Reason: "timeout"}, true, true},
		{sdk.Verdict{Class: sdk.Retry, Reason: "connection_error"}, true, true},
		{sdk.Verdict{Class: sdk.Retry, Reason: "connection_error"}, false, false},
		{sdk.Verdict{Class: sdk.Retry, Reason: "connection_error", Status: 200}, true, true},
		{sdk.Verdict{Class: sdk.Retry, Reason: "http_503", Status: 503}, true, false},
		{sdk.Verdict{Class: sdk.Delivered, Status: 200}, true, false},
		{sdk.Verdict{Class: sdk.Permanent, Status: 400}, true, false},
	} {
		require.Equal(t, tc.want, inDoubt(tc.v, tc.wrote), "%+v wrote=%v", tc.v, tc.wrote)
	}
}

// doubtful: with resend the events go round again (or to the dead-letter topic, attempts spent);
// with skip they stay settled, due never.
func TestDoubtful(t *testing.T) {
	due := time.Unix(100, 0)
	outs := func() []outcome {
		return []outcome{{status: StatusRetrying, notBefore: due}, {status: StatusDeadLettered}, {status: StatusDelivered}}
	}
	o := outs()
	doubtful(o, true)
	require.Equal(t, []outcome{{status: StatusInDoubt, again: true, notBefore: due}, {status: StatusInDoubt, parked: true}, {status: StatusDelivered}}, o)
	o = outs()
	doubtful(o, false)
	require.Equal(t, []outcome{{status: StatusInDoubt}, {status: StatusInDoubt}, {status: StatusDelivered}}, o)
	c := newCycle(sourceMain)
	for _, x := range o {
		c.add(x)
	}
	later, _ := c.later()
	require.Empty(t, later, "skipped events are never due again")
}
