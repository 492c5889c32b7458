package enforce

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/internal/statestore"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/schemas"
)

// restoreConfig is a deployment of its own (topic prefix, state folder) on the test broker.
func restoreConfig(t *testing.T) *config.Config {
	brokers := testenv.Kafka(t) // TOLLGATE_TEST_KAFKA, or a container; skips under -short
	dir := t.TempDir()
	yaml := fmt.Sprintf("kafka:\n  brokers: [%s]\n  topic_prefix: restore%d.\n  partitions: 2\ningest:\n  write_keys: [k]\n",
		brokers, time.Now().UnixNano())
	cfg, err := config.Parse(filepath.Join(dir, "config.yaml"), []byte(yaml), func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	cfg.Policy = &policy.Policy{} // no destinations: only the processor's own topics
	return cfg
}

// produceChangelog writes consent states and remembered ids as a processor's transactions do
// (keyed by user, so a user's records share a partition).
func produceChangelog(t *testing.T, cl *kgo.Client, cfg *config.Config, from, to int, now int64) {
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		user := fmt.Sprintf("u%d", i)
		c, err := schemas.ConsentUpdates.Encode(&schemas.ConsentUpdate{UserKey: user, Consent: map[string]bool{"marketing": i%2 == 0}, TimestampMs: now})
		require.NoError(t, err)
		d, err := schemas.Duplicates.Encode(&schemas.Duplicate{EventID: fmt.Sprint("e", i), UserKey: user, FirstSeenMs: now, LastSeenMs: now})
		require.NoError(t, err)
		recs = append(recs, &kgo.Record{Topic: cfg.Topic(config.TopicState), Key: []byte(user), Value: c},
			&kgo.Record{Topic: cfg.Topic(config.TopicDedupIDs), Key: []byte(user), Value: d})
	}
	require.NoError(t, cl.ProduceSync(context.Background(), recs...).FirstErr())
}

// A cold start reads both changelogs whole; a restart on the same folder reads only what was
// added since (the offsets are stored with the data); a deleted folder is rebuilt. Each time the
// consent and the remembered ids are all there.
func TestRestoreReadsOnlyTheChangelogTail(t *testing.T) {
	cfg := restoreConfig(t)
	ctx := context.Background()
	cl, err := kafka.NewClient(cfg, zap.NewNop())
	require.NoError(t, err)
	defer cl.Close()
	require.NoError(t, kafka.EnsureTopics(ctx, cfg, cl))
	now := time.Now().UnixMilli()
	produceChangelog(t, cl, cfg, 0, 100, now)
	parts := []int32{0, 1}

	restore := func() (*Processor, int) {
		p := New(cfg, zap.NewNop())
		n, err := p.restore(ctx, cl, parts)
		require.NoError(t, err)
		return p, n
	}
	check := func(p *Processor, users int) {
		found := 0
		for i := range users {
			user := fmt.Sprintf("u%d", i)
			for _, part := range parts {
				st, err := p.state.state(part, user)
				require.NoError(t, err)
				_, seen, err := p.state.seen(part, statestore.IDOf(user, fmt.Sprint("e", i)), now)
				require.NoError(t, err)
				if st != nil {
					found++
					_, refused := st.Consent["marketing"]
					require.Equal(t, i%2 != 0, refused, "%s's refusal is restored", user)
					require.True(t, seen, "%s's id is remembered on the partition of their consent", user)
				}
			}
		}
		require.Equal(t, users, found)
	}

	p, n := restore()
	require.Equal(t, 200, n, "cold: both changelogs whole")
	check(p, 100)
	require.NoError(t, p.state.closeAll())

	produceChangelog(t, cl, cfg, 100, 110, now)
	p, n = restore()
	require.Equal(t, 20, n, "warm: only the records added since")
	check(p, 110)
	require.NoError(t, p.state.closeAll())

	require.NoError(t, os.RemoveAll(cfg.StatePath()))
	p, n = restore()
	require.Equal(t, 220, n, "cold again: the deleted folder is rebuilt")
	check(p, 110)
	require.NoError(t, p.state.closeAll())
	require.True(t, strings.HasPrefix(p.state.dir, filepath.Dir(cfg.File)), "the state lives next to the config by default")
}
