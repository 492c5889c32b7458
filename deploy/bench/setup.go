package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/deploy/harness"
)

// writeConfig writes the run's policy (the stand-ins' addresses in place of the file's) and
// config into dir.
func writeConfig(dir string, o options, prefix, db, ingestAddr string, stand map[string]string) error {
	pol, err := os.ReadFile(o.policy)
	if err != nil {
		return err
	}
	p := strings.NewReplacer("127.0.0.1:9101", stand["ga4"], "127.0.0.1:9102", stand["meta"], "127.0.0.1:9103", stand["webhook"]).Replace(string(pol))
	p = setHold(p, o.hold)
	if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(p), 0o600); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`kafka:
  brokers: [%q]
  topic_prefix: %q
  partitions: %d
clickhouse:
  addr: %q
  database: %q
ingest:
  listen: %q
  write_keys: ["wk_bench"]
delivery:
  max_attempts: 3
  initial_backoff: 100ms
processor:
  queued_choices: %t
policy_file: policy.yaml
`, o.brokers, prefix, o.partitions, o.chNative, db, ingestAddr, o.queuedChoices)
	return os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o600)
}

// cleanup drops the run's database and deletes its topics (unless -keep).
func cleanup(o options, ch chClient, prefix, db string) {
	if o.keep {
		logf("kept topics %s* and database %s", prefix, db)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := ch.query(ctx, "DROP DATABASE IF EXISTS `"+db+"`"); err != nil {
		logf("drop database %s: %v", db, err)
	}
	if err := harness.DeleteTopics(ctx, strings.Split(o.brokers, ","), prefix); err != nil {
		logf("%v", err)
	}
}
