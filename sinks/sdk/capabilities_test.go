package sdk_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

type fakeAdapter struct{ max int }

func (f fakeAdapter) MaxBatch() int                                  { return f.max }
func (fakeAdapter) Validate(*schemas.FilteredEvent, time.Time) error { return nil }
func (fakeAdapter) NewRequest(context.Context, []*schemas.FilteredEvent) (*http.Request, error) {
	return nil, nil
}
func (fakeAdapter) Classify(int, http.Header, []byte, []*schemas.FilteredEvent) sdk.Verdict {
	return sdk.Verdict{}
}

type keyedAdapter struct{ fakeAdapter }

func (keyedAdapter) BatchKey(ev *schemas.FilteredEvent) string { return ev.UserKey }
func (keyedAdapter) Timeout() time.Duration                    { return 3 * time.Second }

func ids(batches [][]*schemas.FilteredEvent) [][]string {
	var out [][]string
	for _, b := range batches {
		var s []string
		for _, ev := range b {
			s = append(s, ev.EventID)
		}
		out = append(out, s)
	}
	return out
}

func TestSplitBatch(t *testing.T) {
	evs := []*schemas.FilteredEvent{
		{EventID: "1", UserKey: "a"}, {EventID: "2", UserKey: "b"}, {EventID: "3", UserKey: "a"},
		{EventID: "4", UserKey: "a"}, {EventID: "5", UserKey: "b"},
	}
	require.Equal(t, [][]string{{"1", "2"}, {"3", "4"}, {"5"}}, ids(sdk.SplitBatch(fakeAdapter{max: 2}, evs)))
	require.Equal(t, [][]string{{"1", "3"}, {"4"}, {"2", "5"}}, ids(sdk.SplitBatch(keyedAdapter{fakeAdapter{max: 2}}, evs)))
	require.Nil(t, sdk.SplitBatch(fakeAdapter{max: 2}, nil))

	out := sdk.SplitBatch(fakeAdapter{max: 2}, evs)
	_ = append(out[0], &schemas.FilteredEvent{EventID: "x"}) // must not overwrite event 3
	require.Equal(t, "3", out[1][0].EventID)
}

func TestRequestTimeout(t *testing.T) {
	require.Equal(t, 3*time.Second, sdk.RequestTimeout(keyedAdapter{}, 10*time.Second))
	require.Equal(t, 10*time.Second, sdk.RequestTimeout(fakeAdapter{}, 10*time.Second))
}
