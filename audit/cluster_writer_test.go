package audit

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// clusterDir is the cluster's state folder of make cluster-up (TOLLGATE_SERVICES_DIR/cluster).
func clusterDir() string {
	dir := os.Getenv("TOLLGATE_SERVICES_DIR")
	if dir == "" {
		dir = "../.services"
	}
	return filepath.Join(dir, "cluster")
}

// stopReplica stops ClickHouse replica n of make cluster-up (SIGTERM to the pid of its pid file)
// and waits until its native port no longer answers.
func stopReplica(t *testing.T, n int, addr string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(clusterDir(), "clickhouse-"+strconv.Itoa(n), "pid"))
	require.NoError(t, err, "replica %d's pid file (TOLLGATE_SERVICES_DIR names the cluster's state folder)", n)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(pid, syscall.SIGTERM))
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err != nil && syscall.Kill(pid, 0) != nil
	}, 60*time.Second, 100*time.Millisecond, "replica %d stops", n)
}

// startCluster reruns cluster-up.sh, which starts what is not running (idempotent).
func startCluster(t *testing.T) {
	t.Helper()
	cmd := exec.Command("../deploy/cluster/cluster-up.sh")
	cmd.Env = append(os.Environ(), "TOLLGATE_SERVICES_DIR="+filepath.Dir(clusterDir()))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "cluster-up:\n%s", out)
}

// The audit writer, given both replicas, keeps inserting while replica 1 is stopped: its retry
// reconnects to replica 2. Once replica 1 is back, it catches up from replica 2 and both hold
// every row.
func TestClusterWriterSurvivesReplicaStop(t *testing.T) {
	cfg := clusterConfig(t)
	needKafka(t)
	addrs := clusterReplicas(t)
	dbs := replicaDBs(t, cfg)
	createTopics(t, cfg)
	group := testGroup(t, cfg)
	log, _ := testLogger(t)
	startWriter(t, cfg, group, log)
	pr := producer(t, cfg)

	const n = 50
	for i := range n {
		produce(t, pr, decisionRecord(t, cfg, int32(i%cfg.Kafka.Partitions), testDecision(i)))
	}
	for i, db := range dbs {
		require.Eventually(t, func() bool { return finalCount(t, db, "decisions") == n }, 60*time.Second, 100*time.Millisecond, "replica %d", i+1)
	}

	stopReplica(t, 1, addrs[0])
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			startCluster(t)
		}
	})
	for i := n; i < 2*n; i++ {
		produce(t, pr, decisionRecord(t, cfg, int32(i%cfg.Kafka.Partitions), testDecision(i)))
	}
	require.Eventually(t, func() bool { return finalCount(t, dbs[1], "decisions") == 2*n }, 60*time.Second, 100*time.Millisecond,
		"the writer inserts through replica 2 while replica 1 is stopped")

	startCluster(t)
	restarted = true
	require.Eventually(t, func() bool {
		var got uint64
		err := dbs[0].QueryRow(context.Background(), "SELECT count() FROM "+dbs[0].table("decisions")+" FINAL").Scan(&got)
		return err == nil && got == 2*n
	}, 90*time.Second, 200*time.Millisecond, "replica 1 fetches what it missed")
	require.Equal(t, uint64(2*n), finalCount(t, dbs[0], "decisions_by_user"))
	require.Equal(t, readDecisions(t, dbs[0], "decisions"), readDecisions(t, dbs[1], "decisions"))
}
