package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tollgate-dev/tollgate/deploy/harness"
	"github.com/tollgate-dev/tollgate/internal/standin"
)

type chClient struct{ base string }

func (c chClient) rows(ctx context.Context, q string) ([][]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/?"+url.Values{"query": {q}}.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("clickhouse: %s", strings.TrimSpace(string(b)))
	}
	var out [][]string
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if line != "" {
			out = append(out, strings.Split(line, "\t"))
		}
	}
	return out, nil
}

type pair struct{ event, dest string }

// result is what ClickHouse and the stand-ins say happened to the accepted events.
type result struct {
	accepted        int
	destinations    int
	decisions       map[pair]string // outcome
	final           map[pair]string // delivered, dead_lettered or blocked
	missingDecision int
	unfinished      int
	blockedSent     int              // vendor received an event its decision blocked (or never decided)
	blockedMarked   int              // a delivery row says "delivered" for a blocked decision
	rawPII          int              // vendor bodies holding a raw e-mail, phone or IP of the sample
	dlq             map[string]int64 // records per dead-letter topic
	poisoned        int              // poison records written to each topic
	once            map[string]*once // per vendor (once.go)
	resent          int              // events clients sent again after their batch was accepted
	absorbed        int              // resends the processor absorbed (duplicates table); -1: no table
}

func (r *result) losses() int    { return r.missingDecision + r.unfinished }
func (r *result) forbidden() int { return r.blockedSent + r.blockedMarked + r.rawPII }

// settle polls ClickHouse until every accepted event has a decision per destination and every
// forwarded one a final delivery status, or 6 minutes pass; then it computes the result.
func settle(ctx context.Context, ch chClient, db string, accepted map[string]bool, dests int) (*result, error) {
	deadline := time.Now().Add(6 * time.Minute)
	var r *result
	for {
		var err error
		r, err = collect(ctx, ch, db, accepted, dests)
		if err == nil && r.losses() == 0 {
			return r, nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return nil, err
			}
			return r, nil
		}
		if err == nil {
			logf("settling: %d decisions missing, %d forwarded events without a final delivery status", r.missingDecision, r.unfinished)
		} else {
			logf("settling: %v", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
}

func collect(ctx context.Context, ch chClient, db string, accepted map[string]bool, dests int) (*result, error) {
	r := &result{accepted: len(accepted), destinations: dests, decisions: map[pair]string{}, final: map[pair]string{}}
	rows, err := ch.rows(ctx, fmt.Sprintf("SELECT DISTINCT event_id, destination, outcome FROM `%s`.decisions WHERE run_id = ''", db))
	if err != nil {
		return nil, err
	}
	for _, row := range rows {
		if len(row) == 3 {
			r.decisions[pair{row[0], row[1]}] = row[2]
		}
	}
	// in_doubt ends an event that is not sent again (GA4, on_doubt skip: the one destination
	// here without a dedup key); an event in doubt that is sent again (Meta, ops) ends only with
	// a later attempt's status.
	rows, err = ch.rows(ctx, fmt.Sprintf("SELECT DISTINCT event_id, destination, status FROM `%s`.deliveries WHERE status IN ('delivered', 'dead_lettered', 'blocked', 'in_doubt')", db))
	if err != nil {
		return nil, err
	}
	for _, row := range rows {
		if len(row) == 3 {
			p := pair{row[0], row[1]}
			switch prev := r.final[p]; {
			case prev == "delivered": // delivered wins over an earlier dead letter of a replay
			case row[2] == "in_doubt" && (prev != "" || p.dest != "ga4"):
			default:
				r.final[p] = row[2]
			}
		}
	}
	perEvent := map[string]int{}
	for p, outcome := range r.decisions {
		perEvent[p.event]++
		if outcome == "forwarded" {
			if _, ok := r.final[p]; !ok && accepted[p.event] {
				r.unfinished++
			}
		} else if r.final[p] == "delivered" {
			r.blockedMarked++
		}
	}
	for id := range accepted {
		r.missingDecision += max(dests-perEvent[id], 0)
	}
	return r, nil
}

// rawPII matches what the sample traffic carries in clear and no destination may receive in
// clear: e-mail addresses, phone numbers and IP addresses.
var rawPII = regexp.MustCompile(`(?i)@example\.com|\(650\) 555-|203\.0\.113\.`)

// vendorCheck looks at every request the stand-ins accepted.
func (r *result) vendorCheck(vendors map[string]*standin.Server) {
	for dest, v := range vendors {
		for _, req := range v.Requests() {
			if rawPII.Match(req.Body) {
				r.rawPII++
			}
			if !req.Accepted {
				continue
			}
			for _, id := range req.EventIDs { // GA4 events carry no id; their payload is checked above
				if r.decisions[pair{id, dest}] != "forwarded" {
					r.blockedSent++
				}
			}
		}
	}
}

func printTable(w *os.File, r *result, comps map[string]*harness.Proc, seed uint64) {
	count := func(m map[pair]string, v string) int {
		n := 0
		for _, s := range m {
			if s == v {
				n++
			}
		}
		return n
	}
	forwarded := count(r.decisions, "forwarded")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "\nchaos invariants (seed %d)\n", seed)
	fmt.Fprintln(tw, "check\tcount\t")
	fmt.Fprintf(tw, "events accepted (202)\t%d\t\n", r.accepted)
	fmt.Fprintf(tw, "decisions (event x destination)\t%d\t\n", len(r.decisions))
	fmt.Fprintf(tw, "  forwarded\t%d\t\n", forwarded)
	fmt.Fprintf(tw, "  blocked\t%d\t\n", len(r.decisions)-forwarded)
	fmt.Fprintf(tw, "deliveries (delivered)\t%d\t\n", count(r.final, "delivered"))
	fmt.Fprintf(tw, "dead letters (event x destination)\t%d\t\n", count(r.final, "dead_lettered"))
	dlqs := make([]string, 0, len(r.dlq))
	for t := range r.dlq {
		dlqs = append(dlqs, t)
	}
	sort.Strings(dlqs)
	for _, t := range dlqs {
		fmt.Fprintf(tw, "  offsets in %s (%d poison records written upstream)\t%d\t\n", t, r.poisoned, r.dlq[t])
	}
	fmt.Fprintf(tw, "losses (must be 0)\t%d\t\n", r.losses())
	fmt.Fprintf(tw, "  accepted events missing a decision\t%d\t\n", r.missingDecision)
	fmt.Fprintf(tw, "  forwarded without final delivery status\t%d\t\n", r.unfinished)
	fmt.Fprintf(tw, "forbidden forwards (must be 0)\t%d\t\n", r.forbidden())
	fmt.Fprintf(tw, "  vendor got an event its decision blocked\t%d\t\n", r.blockedSent)
	fmt.Fprintf(tw, "  blocked decision marked delivered\t%d\t\n", r.blockedMarked)
	fmt.Fprintf(tw, "  vendor request with raw e-mail/phone/IP\t%d\t\n", r.rawPII)
	_ = tw.Flush()
	printOnce(w, r)
	printDoubt(w, r)
	names := make([]string, 0, len(comps))
	for n := range comps {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "\ncomponent restarts")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "component\tkill -9\tother exits\t")
	for _, n := range names {
		k, c := comps[n].Counts()
		fmt.Fprintf(tw, "%s\t%d\t%d\t\n", n, k, c)
	}
	_ = tw.Flush()
}

// doubtCheck compares what each vendor received with the audit's delivered and in_doubt rows
// (deliveries FINAL). A request in doubt (CONTRACT §9) may or may not have reached the vendor,
// so an event with d delivered and q in_doubt rows was received between d and d+q times: more is
// a copy the audit does not explain (unexplained, must be 0), fewer than d a delivered row the
// vendor never got (disagree, must be 0). GA4 events carry no id: its totals are compared, and
// its doubles are explained by at most as many in_doubt rows.
func (r *result) doubtCheck(ctx context.Context, ch chClient, db string, vendors map[string]*standin.Server) error {
	rows, err := ch.rows(ctx, fmt.Sprintf("SELECT destination, event_id, countIf(status = 'delivered'), countIf(status = 'in_doubt') FROM `%s`.deliveries FINAL GROUP BY destination, event_id", db))
	if err != nil {
		return err
	}
	type counts struct{ delivered, inDoubt int }
	audited := map[pair]counts{}
	for _, row := range rows {
		if len(row) == 4 {
			d, _ := strconv.Atoi(row[2])
			q, _ := strconv.Atoi(row[3])
			audited[pair{row[1], row[0]}] = counts{d, q}
		}
	}
	for dest, v := range vendors {
		o := r.once[dest]
		o.disagree, o.unexplained, o.inDoubt = 0, 0, 0
		ids := map[string]int{}
		for _, id := range v.EventIDs() {
			ids[id]++
		}
		var delivered int
		for p, c := range audited {
			if p.dest != dest {
				continue
			}
			delivered += c.delivered
			o.inDoubt += c.inDoubt
			if len(ids) > 0 && ids[p.event] < c.delivered {
				o.disagree++
			}
		}
		if len(ids) == 0 { // GA4
			o.unexplained = max(o.twice-o.inDoubt, 0, o.received-delivered-o.inDoubt)
			o.disagree = max(delivered-o.received, 0)
			continue
		}
		for id, n := range ids {
			c := audited[pair{id, dest}]
			if n > c.delivered+c.inDoubt {
				o.unexplained += n - c.delivered - c.inDoubt
			}
		}
	}
	return nil
}

func printDoubt(w *os.File, r *result) {
	fmt.Fprintln(w, "\nin doubt (requests whose outcome the sink could not know: each event has an in_doubt row)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "vendor\tin_doubt rows\treceived twice\tcopies the audit does not explain\t")
	for _, d := range slices.Sorted(maps.Keys(r.once)) {
		o := r.once[d]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d (must be 0)\t\n", d, o.inDoubt, o.twice, o.unexplained)
	}
	_ = tw.Flush()
}
