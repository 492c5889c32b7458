package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/tollgate-dev/tollgate/audit"
	"github.com/tollgate-dev/tollgate/ingest"
	"github.com/tollgate-dev/tollgate/internal/backoff"
	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/internal/lag"
	"github.com/tollgate-dev/tollgate/internal/logging"
	"github.com/tollgate-dev/tollgate/processors/enforce"
	"github.com/tollgate-dev/tollgate/sinks/delivery"
	"github.com/tollgate-dev/tollgate/sinks/registry"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// app is a loaded, validated configuration with everything each component needs.
type app struct {
	cfg      *config.Config
	log      *zap.Logger
	adapters map[string]sdk.Adapter // by destination name
}

// load reads the config and policy and builds every destination's adapter, so a bad config,
// policy or missing secret stops the binary before anything starts.
func load(cmd *cobra.Command) (*app, error) {
	path, _ := cmd.Flags().GetString("config")
	if path == "" {
		return nil, usageError{fmt.Errorf("--config FILE is required")}
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: logging.New(), adapters: map[string]sdk.Adapter{}}
	for _, name := range cfg.Policy.Names {
		dest := cfg.Policy.Destinations[name]
		ad, err := registry.New(dest, os.LookupEnv)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.Policy.File, err)
		}
		if err := sdk.CheckAddress(dest); err != nil {
			return nil, fmt.Errorf("%s: destinations.%s: %w", cfg.Policy.File, name, err)
		}
		if err := sdk.CheckAllowedHost(cfg.Delivery.AllowedHosts, dest); err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.Policy.File, err)
		}
		a.adapters[name] = ad
	}
	return a, nil
}

func configFlag(cmd *cobra.Command) {
	cmd.Flags().String("config", "", "config file (YAML); see docs/configuration.md")
}

// component is one long-running part of the pipeline.
type component func(ctx context.Context, a *app) error

// runComponents creates the topics, then runs the components until ctx ends or one fails.
func runComponents(ctx context.Context, a *app, comps ...component) error {
	defer a.log.Sync() //nolint:errcheck // stderr sync errors are meaningless
	if err := ensureTopics(ctx, a); err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	if err := servePprof(ctx, g, a); err != nil {
		return fmt.Errorf("debug.pprof_listen: %w", err)
	}
	if err := serveLag(ctx, g, a); err != nil {
		return err
	}
	for _, c := range comps {
		g.Go(func() error { return c(ctx, a) })
	}
	err := g.Wait()
	a.log.Info("stopped", zap.Error(err))
	return err
}

// serveLag adds every consumer group's lag to the process's metrics (ingest's /metrics, and
// metrics.listen when set) for as long as the components run.
func serveLag(ctx context.Context, g *errgroup.Group, a *app) error {
	cl, err := kafka.NewClient(a.cfg, a.log)
	if err != nil {
		return err
	}
	groups := []string{a.cfg.ProcessorGroup(), a.cfg.AuditGroup()}
	for _, name := range a.cfg.Policy.Names {
		groups = append(groups, a.cfg.SinkGroup(name))
	}
	c := lag.New(cl, groups...)
	if err := prometheus.Register(c); err != nil {
		cl.Close()
		return fmt.Errorf("register lag metrics: %w", err)
	}
	g.Go(func() error {
		defer cl.Close()
		defer prometheus.Unregister(c)
		if a.cfg.Metrics.Listen == "" {
			<-ctx.Done()
			return nil
		}
		if err := lag.Serve(ctx, a.cfg.Metrics.Listen, prometheus.DefaultGatherer); err != nil {
			return fmt.Errorf("metrics.listen %s: %w", a.cfg.Metrics.Listen, err)
		}
		return nil
	})
	return nil
}

func ensureTopics(ctx context.Context, a *app) error {
	cl, err := kafka.NewClient(a.cfg, a.log)
	if err != nil {
		return err
	}
	defer cl.Close()
	deadline := time.Now().Add(brokerWait)
	for attempt := 1; ; attempt++ {
		err := kafka.EnsureTopics(ctx, a.cfg, cl)
		if err == nil {
			break
		}
		if !kafka.Unreachable(err) || time.Now().After(deadline) {
			return fmt.Errorf("kafka at %v: %w", a.cfg.Kafka.Brokers, err)
		}
		a.log.Warn("kafka is not reachable yet; retrying", zap.Strings("brokers", a.cfg.Kafka.Brokers), zap.Error(err))
		if backoff.Sleep(ctx, brokerBackoff.Equal(attempt)) != nil {
			return ctx.Err()
		}
	}
	kafka.WarnWeakTopics(ctx, a.cfg, cl, a.log)
	return nil
}

// brokerWait is how long a component starting while Kafka is unreachable (a broker restarting,
// a cluster still coming up) waits for it before it exits with the error: longer than a broker
// restart, so a supervisor's restart of a component does not turn into a crash loop.
const brokerWait = 2 * time.Minute

var brokerBackoff = backoff.Policy{Initial: 250 * time.Millisecond, Max: 5 * time.Second}

func runIngest(ctx context.Context, a *app) error {
	cl, err := kafka.NewClient(a.cfg, a.log,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(ingest.ProduceTimeout),
		kgo.ProducerLinger(a.cfg.Ingest.ProduceLinger()),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	return ingest.New(a.cfg, ingest.Gathering(cl), a.log).Run(ctx)
}

func runProcessor(ctx context.Context, a *app) error {
	return enforce.New(a.cfg, a.log).Run(ctx)
}

func runAudit(ctx context.Context, a *app) error {
	return audit.New(a.cfg, a.log).Run(ctx)
}

// sinkComponents returns one runner per destination, or only the named one.
func sinkComponents(a *app, only string) ([]component, error) {
	var comps []component
	for _, name := range a.cfg.Policy.Names {
		if only != "" && name != only {
			continue
		}
		r := delivery.NewRunner(a.cfg, a.cfg.Policy.Destinations[name], a.adapters[name], a.log)
		comps = append(comps, func(ctx context.Context, _ *app) error { return r.Run(ctx) })
	}
	if len(comps) == 0 {
		return nil, usageError{fmt.Errorf("--destination %q: no such destination in %s (have: %v)", only, a.cfg.Policy.File, a.cfg.Policy.Names)}
	}
	return comps, nil
}
