package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/tollgate-dev/tollgate/deploy/harness"
)

// ingestAlone is -only-ingest: the ingest latency phase with ingest the only tollgate process
// (no processor, sinks or audit writer reading what it writes), against the running Kafka. Its
// p99 beside make bench's ingest_latency tells what the rest of the pipeline sharing the cores
// costs ingest's tail from what ingest and the broker cost by themselves.
func ingestAlone(ctx context.Context, o options, dir, base string, env []string) (map[string]any, error) {
	p, err := startProc("ingest", o.bin, env, dir, "ingest", "--config", filepath.Join(dir, "config.yaml"))
	if err != nil {
		return nil, err
	}
	defer p.stop()
	if err := harness.WaitReady(ctx, base, 90*time.Second, p.h); err != nil {
		return nil, fmt.Errorf("%w (logs in %s)", err, dir)
	}
	var seq atomic.Int64
	if _, err := warmUp(ctx, o, base, &seq); err != nil {
		return nil, err
	}
	watched := append([]*proc{p}, services(o.servicesDir)...)
	before, from := cpuNow(watched), time.Now()
	lat, sent := singleEvents(ctx, o, base, "l", &seq, nil)
	after := cpuNow(watched)
	lat["cores_used"] = coresUsed(before, after, time.Since(from))
	lat["ingest_cpu_us_per_request"] = round((after["ingest"]-before["ingest"])/float64(max(sent, 1))*1e6, 1)
	return lat, nil
}

// warmUp sends 3 s of 100-event batches on two connections (connections opened, ingest's
// producer warm) and returns how many events ingest accepted; an error when any was refused or
// none accepted.
func warmUp(ctx context.Context, o options, base string, seq *atomic.Int64) (int64, error) {
	acc, st := closedLoop(ctx, newPoster(base, "wk_bench", 2), o.template("w", 100, false), 100, 2, 3*time.Second, seq)
	if st.errors() > 0 || acc == 0 {
		return 0, fmt.Errorf("warm-up: %v", st.json())
	}
	return acc, nil
}
