package enforce

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/schemas"
)

// newTestLookahead is a lookahead without its follower: tests hand records to observe directly,
// as the follower does for the partitions it follows.
func newTestLookahead() *lookahead {
	return &lookahead{book: newCodebook(), pending: map[int32]map[string][]restriction{}}
}

func updateRecord(t *testing.T, partition int32, offset int64, u schemas.ConsentUpdate) *kgo.Record {
	b, err := schemas.ConsentUpdates.Encode(&u)
	require.NoError(t, err)
	return &kgo.Record{Partition: partition, Offset: offset, Key: []byte(u.UserKey), Value: b}
}

func TestLookaheadAppliesOnlyRestrictionsAfterTheEvent(t *testing.T) {
	l := newTestLookahead()
	marketing, _ := l.book.bit("marketing")
	analytics, _ := l.book.bit("analytics")
	l.observe(&kgo.Record{Partition: 0, Offset: 0, Value: []byte("an event")})
	l.observe(updateRecord(t, 0, 1, schemas.ConsentUpdate{UserKey: "u", Consent: map[string]bool{"marketing": false, "analytics": true}}))
	l.observe(updateRecord(t, 0, 2, schemas.ConsentUpdate{UserKey: "u", Consent: map[string]bool{"analytics": true}})) // a grant: not applied ahead
	l.observe(updateRecord(t, 0, 3, schemas.ConsentUpdate{UserKey: "v", Erased: true}))

	refused, erased := l.ahead(0, "u", 0)
	require.Equal(t, marketing, refused, "the withdrawal after the event applies; the grant does not")
	require.NotEqual(t, analytics, refused&analytics)
	require.False(t, erased)
	refused, _ = l.ahead(0, "u", 1)
	require.Zero(t, refused, "an event after the withdrawal gets it from the state, in log order")
	_, erased = l.ahead(0, "v", 2)
	require.True(t, erased)

	l.passed(0, 2)
	require.NotContains(t, l.pending[0], "u", "restrictions the processor has passed are forgotten")
	require.Contains(t, l.pending[0], "v")
}
