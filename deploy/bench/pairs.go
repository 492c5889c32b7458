package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// -pool-pairs: the hold's target (end to end with -hold within 10 % of the same traffic without
// it) judged over several pairs of runs, not one. On this shared host runs of the same code
// differ in end-to-end throughput by more than the target's margin (8,522 to 13,886 events/s
// for seven hold off runs of session 13), so one pair says little. Each pair is one run of each
// arm, back to back on fresh services, in an order tossed per pair (so a drift of the machine's
// speed counts against each arm alike); the change is taken within each pair and the pairs'
// changes are tested by random sign flips (signFlip): the mean change, its 95 % interval, and
// the p of "the true change is the target's edge" (-10 %). The target is shown when the whole
// interval is above the edge.

// holdTargetEdge is the target's edge: hold on at most 10 % below hold off.
const holdTargetEdge = -10.0

// runFigures are the figures of one bench report that a pair compares.
type runFigures struct {
	EventsPerS float64 // e2e_throughput.events_per_s
	CPUPerEv   float64 // cpu_s_per_1000_events.total_with_services, in µs per event
}

func readRunFigures(path string) (runFigures, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return runFigures{}, err
	}
	var r struct {
		E2E struct {
			EventsPerS float64 `json:"events_per_s"`
		} `json:"e2e_throughput"`
		CPU map[string]float64 `json:"cpu_s_per_1000_events"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return runFigures{}, fmt.Errorf("%s: %w", path, err)
	}
	if r.E2E.EventsPerS <= 0 {
		return runFigures{}, fmt.Errorf("%s: no e2e_throughput.events_per_s (a finished make bench report?)", path)
	}
	return runFigures{EventsPerS: r.E2E.EventsPerS, CPUPerEv: r.CPU["total_with_services"] * 1000}, nil
}

// pctChange is b against a, in percent.
func pctChange(a, b float64) float64 { return (b/a - 1) * 100 }

// poolPairs prints each pair's change and the pooled test. pairs are "OFF.json,ON.json" each.
func poolPairs(w io.Writer, pairs []string) error {
	var changes, cpu []float64
	fmt.Fprintf(w, "%-62s %8s %8s %8s   %s\n", "pair (off, on)", "off e/s", "on e/s", "change", "CPU per event, off → on (µs)")
	for _, pair := range pairs {
		paths := strings.Split(pair, ",")
		if len(paths) != 2 {
			return fmt.Errorf("pair %q: want OFF.json,ON.json", pair)
		}
		off, err := readRunFigures(paths[0])
		if err != nil {
			return err
		}
		on, err := readRunFigures(paths[1])
		if err != nil {
			return err
		}
		c := pctChange(off.EventsPerS, on.EventsPerS)
		changes = append(changes, c)
		cpu = append(cpu, pctChange(off.CPUPerEv, on.CPUPerEv))
		fmt.Fprintf(w, "%-62s %8.0f %8.0f %+7.1f %%   %.0f → %.0f (%+.1f %%)\n",
			shortPair(paths), off.EventsPerS, on.EventsPerS, c, off.CPUPerEv, on.CPUPerEv, cpu[len(cpu)-1])
	}
	lo, hi := signFlipCI(changes)
	interval := fmt.Sprintf("95 %% interval %+.1f to %+.1f %%", lo, hi)
	if math.IsInf(lo, -1) {
		interval = "too few pairs for a 95 % interval"
	}
	fmt.Fprintf(w, "%d pairs: end to end %+.1f %% on the mean (%s; p %.3f that it is %.0f %%); CPU per event %+.1f %%\n",
		len(changes), mean(changes), interval, signFlip(changes, holdTargetEdge), holdTargetEdge, mean(cpu))
	switch {
	case math.IsInf(lo, -1): // signFlipCI's answer for too few pairs
		fmt.Fprintln(w, "target: not judged (fewer than 6 pairs cannot reject anything at 0.05)")
	case lo > holdTargetEdge:
		fmt.Fprintln(w, "target: met (the whole interval is within 10 %)")
	case hi < holdTargetEdge:
		fmt.Fprintln(w, "target: missed (the whole interval is below -10 %)")
	default:
		fmt.Fprintln(w, "target: not shown (the interval spans -10 %)")
	}
	return nil
}

// shortPair names a pair by its files' base names.
func shortPair(paths []string) string { return filepath.Base(paths[0]) + " " + filepath.Base(paths[1]) }
