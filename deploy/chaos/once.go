package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"text/tabwriter"

	"github.com/tollgate-dev/tollgate/internal/standin"
)

// once is the "one event, once" part of the result, per vendor: what the stand-in received
// more than once, and where the audit's delivered rows disagree with what it received.
type once struct {
	received  int // event copies the stand-in accepted
	twice     int // copies beyond the first of an event (by event id; GA4 by client, time, name)
	auditRows int // delivered rows in deliveries (FINAL) for the destination
	disagree  int // events whose delivered rows differ from the copies the stand-in received
	// inDoubt and unexplained: see doubtCheck (check.go).
	inDoubt, unexplained int
}

// onceCheck counts duplicate deliveries at each stand-in and compares them with the audit, and
// reads how many resends the processor absorbed (the duplicates table).
func (r *result) onceCheck(ctx context.Context, ch chClient, db string, vendors map[string]*standin.Server, resent int) error {
	r.once, r.resent = map[string]*once{}, resent
	rows, err := ch.rows(ctx, fmt.Sprintf("SELECT destination, event_id, countIf(status = 'delivered') FROM `%s`.deliveries FINAL GROUP BY destination, event_id", db))
	if err != nil {
		return err
	}
	audited := map[pair]int{}
	for _, row := range rows {
		if len(row) == 3 {
			n, _ := strconv.Atoi(row[2])
			audited[pair{row[1], row[0]}] = n
		}
	}
	for dest, v := range vendors {
		o := &once{}
		r.once[dest] = o
		keys := map[string]int{}
		for _, k := range v.Keys() {
			keys[k]++
		}
		for _, n := range keys {
			o.received += n
			o.twice += n - 1
		}
		for p, n := range audited {
			if p.dest == dest {
				o.auditRows += n
			}
		}
		ids := map[string]int{}
		for _, id := range v.EventIDs() {
			ids[id]++
		}
		if len(ids) == 0 { // GA4: no ids to join on; the totals must agree
			if o.auditRows != o.received {
				o.disagree = abs(o.auditRows - o.received)
			}
			continue
		}
		for p, n := range audited {
			if p.dest == dest && n != ids[p.event] {
				o.disagree++
			}
		}
		for id, n := range ids {
			if _, ok := audited[pair{id, dest}]; !ok && n > 0 {
				o.disagree++
			}
		}
	}
	if err := r.doubtCheck(ctx, ch, db, vendors); err != nil {
		return err
	}
	rows, err = ch.rows(ctx, fmt.Sprintf("SELECT sum(resends) FROM `%s`.duplicates FINAL", db))
	if err != nil {
		r.absorbed = -1 // no duplicates table in this build
		return nil
	}
	if len(rows) == 1 && len(rows[0]) == 1 {
		r.absorbed, _ = strconv.Atoi(rows[0][0])
	}
	return nil
}

// twiceOrWrong counts what must be 0: copies a vendor received that the audit does not explain
// with an in_doubt row, and audit rows that disagree with what a vendor received (doubtCheck).
func (r *result) twiceOrWrong() int {
	n := 0
	for _, o := range r.once {
		n += o.disagree + o.unexplained
	}
	return n
}

func printOnce(w *os.File, r *result) {
	fmt.Fprintf(w, "\none event, once (resent by clients after a lost answer: %d events; absorbed by the processor: %s)\n", r.resent, absorbed(r.absorbed))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "vendor\treceived\treceived twice\taudit delivered rows\taudit disagrees\t")
	for _, d := range slices.Sorted(maps.Keys(r.once)) {
		o := r.once[d]
		must := " (each in doubt: see below)"
		if d == "ga4" {
			must = " (no dedup key; each in doubt: see below)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d%s\t%d\t%d (must be 0)\t\n", d, o.received, o.twice, must, o.auditRows, o.disagree)
	}
	_ = tw.Flush()
}

func absorbed(n int) string {
	if n < 0 {
		return "n/a"
	}
	return strconv.Itoa(n)
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
