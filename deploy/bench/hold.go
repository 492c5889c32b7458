package main

import (
	"context"
	"net/http"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate-dev/tollgate/internal/sample"
)

// The -late-choice and -hold flags: the batched phase's traffic as a site with an opt-in banner
// makes it (CONTRACT §9, "Pre-consent hold"). Each request brings fresh users' first events,
// in an opt_in jurisdiction with no consent entry (no choice yet); lateChoice after it was
// accepted, the same connections send those users' next events, each carrying the user's
// choice. With -hold the policy holds (window holdWindow), so the first events wait in the
// processor's store and are decided when the choice arrives; without it they are blocked
// (no_consent) at once. The two runs send the same traffic: compare their e2e_throughput (the
// target: within 10 % of each other; -pool-pairs, pairs.go, judges it over several pairs). The
// other phases send events that all carry a choice, so that none waits out the 10-minute window.
// `-late-choice 1ms -choice-first` sends each user's first events, carrying the answer, right
// before the answer itself: the hold run's decisions and deliveries (a released user's events go
// out together, as after a release) with nothing held, i.e. what a hold that cost nothing would
// reach.

// holdWindow is the hold's window in the -hold bench: far longer than the choice's delay, so
// every release is by the choice and none by the window.
const holdWindow = "10m"

// lateTraffic is the pair of bodies sent for one request number: the users' first events,
// then their choice.
type lateTraffic struct{ first, answer template }

// choices are the answers users give (explicit for every purpose, so each releases the hold):
// mostly accept all, some accept analytics only, some refuse all.
var choices = []map[string]bool{
	{"necessary": true, "analytics": true, "marketing": true},
	{"necessary": true, "analytics": true, "marketing": true},
	{"necessary": true, "analytics": true, "marketing": false},
	{"necessary": true, "analytics": false, "marketing": false},
}

// newLateTraffic returns n first events (n/2 users, two each, EU, no consent) and n answering
// events of the same users (a choice each); their ids are <prefix><seq>-0000..n-1 and n..2n-1.
// With choiceFirst the first events carry their user's choice too (-choice-first).
func newLateTraffic(prefix string, n int, choiceFirst bool) lateTraffic {
	first, answer := sampleEvents(n), sampleEvents(n)
	users := max(n/2, 1)
	for j := range first {
		first[j].Jurisdiction, first[j].Consent, first[j].GPC = "EU", nil, false
		answer[j].Jurisdiction, answer[j].GPC = "EU", false
		answer[j].Consent = choices[(j%users)%len(choices)]
		if choiceFirst {
			first[j].Consent = answer[j].Consent
		}
	}
	return lateTraffic{first: templateOf(first, prefix, 0, false), answer: templateOf(answer, prefix, n, false)}
}

// template is newTemplate, with every event given a choice in a late-choice run (withChoices).
func (o options) template(prefix string, n int, sampled bool) template {
	if o.lateChoice == 0 {
		return newTemplate(prefix, n, sampled)
	}
	return templateOf(withChoices(sampleEvents(n)), prefix, 0, sampled)
}

// withChoices gives every event of a template's events that made no choice one (accept all):
// the -hold bench's latency phases must not leave events waiting for the window.
func withChoices(evs []sample.Event) []sample.Event {
	for j := range evs {
		if evs[j].Consent == nil {
			evs[j].Consent = choices[0]
		}
	}
	return evs
}

// dueAnswer is an answer body waiting for its time.
type dueAnswer struct {
	seq int64
	at  time.Time
}

// answers is the FIFO of answers to send; each is due lateChoice after its first events were
// accepted, so the queue is in due order.
type answers struct {
	mu sync.Mutex
	q  []dueAnswer
}

func (a *answers) push(seq int64, at time.Time) {
	a.mu.Lock()
	a.q = append(a.q, dueAnswer{seq, at})
	a.mu.Unlock()
}

// next returns the first answer if it is due; else how long until it is, and whether any waits.
func (a *answers) next(now time.Time) (d dueAnswer, ok bool, wait time.Duration, pending bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.q) == 0 {
		return dueAnswer{}, false, 0, false
	}
	if h := a.q[0]; !h.at.After(now) {
		a.q = a.q[1:]
		return h, true, 0, true
	}
	return dueAnswer{}, false, a.q[0].at.Sub(now), true
}

// closedLoopLate is closedLoop for late-choice traffic: for d, each connection sends a due
// answer if there is one, else new first events; after d it sends the answers still owed (a
// first event left without its answer would wait out the window), then stops. accepted counts
// the events of both kinds; unanswered counts first requests whose answer was refused (their
// events wait for the window).
func closedLoopLate(ctx context.Context, p *poster, t lateTraffic, perReq, conns int, d, after time.Duration, seq *atomic.Int64) (accepted, unanswered int64, st *statuses) {
	st = &statuses{}
	end := time.Now().Add(d)
	var q answers
	var wg sync.WaitGroup
	var acc, lost atomic.Int64
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				now := time.Now()
				a, ok, wait, pending := q.next(now)
				switch {
				case ok:
					code := p.post(ctx, t.answer.render(a.seq), false)
					st.add(code)
					if code != http.StatusAccepted {
						lost.Add(1)
						continue
					}
					acc.Add(int64(perReq))
				case now.Before(end):
					s := seq.Add(1)
					code := p.post(ctx, t.first.render(s), false)
					st.add(code)
					if code == http.StatusAccepted {
						acc.Add(int64(perReq))
						q.push(s, time.Now().Add(after))
					}
				case pending:
					sleepCtx(ctx, wait)
				default:
					return
				}
			}
		}()
	}
	wg.Wait()
	return acc.Load(), lost.Load(), st
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// lateChoiceReport says how the batched phase was sent: whether the policy held, the choice's
// delay, and the first requests whose answer ingest refused (their events wait for the window,
// so the end-to-end figure would not be reached).
func lateChoiceReport(o options, unanswered int64) map[string]any {
	out := map[string]any{"hold": o.hold, "queued_choices": o.queuedChoices, "choice_first": o.choiceFirst, "choice_after_s": o.lateChoice.Seconds(), "unanswered_requests": unanswered}
	if o.hold {
		out["hold_window"] = holdWindow
	}
	return out
}

// topHold is a policy's top-level hold: block, in flow (hold: {...}) or block style.
var topHold = regexp.MustCompile(`(?m)^hold:.*\n(?:[ \t]+.*\n)*`)

// setHold returns the policy with its hold removed, and with a hold of holdWindow when on: the
// bench decides whether the run holds, whatever the policy file says.
func setHold(pol string, on bool) string {
	pol = topHold.ReplaceAllString(pol, "")
	if on {
		pol += "hold: {window: " + holdWindow + ", max_events_per_user: 100}\n"
	}
	return pol
}
