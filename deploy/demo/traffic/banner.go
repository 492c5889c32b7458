package main

import (
	"fmt"
	"time"

	"github.com/tollgate-dev/tollgate/internal/sample"
)

// The banner scenario (-banner): three visitors of an EU shop browse before answering its
// opt-in banner, as CONTRACT §9's pre-consent hold is for. Each sends its first events with no
// consent (the demo policy holds them instead of blocking them), then, reading time later, one
// accepts all, one rejects all and one never answers. The visitor who accepts sends one more
// event after the click, carrying the choice: the vendors receive the held events first.

// visitor is one visitor of the scenario: its anonymous id, its answer (nil: none) and the
// button that gives it.
type visitor struct {
	key    string
	answer map[string]bool
	button string
}

// bannerPages are a visitor's first events, in order, before the banner is answered.
var bannerPages = []struct{ event, page string }{
	{"page_view", "https://shop.example/"},
	{"page_view", "https://shop.example/product/42"},
	{"add_to_cart", "https://shop.example/product/42"},
	{"page_view", "https://shop.example/cart"},
	{"page_view", "https://shop.example/checkout"},
}

func visitors(prefix string) []visitor {
	return []visitor{
		{prefix + "-accepts", map[string]bool{"necessary": true, "analytics": true, "marketing": true}, "Accept all"},
		{prefix + "-rejects", map[string]bool{"necessary": true, "analytics": false, "marketing": false}, "Reject all"},
		{prefix + "-never-answers", nil, ""},
	}
}

// bannerEvent is visitor v's i-th event, sent at at, with consent (nil: no choice made).
func bannerEvent(v visitor, i int, name, page string, at time.Time, consent map[string]bool) sample.Event {
	return sample.Event{
		EventID: fmt.Sprintf("%s-%d", v.key, i), Event: name, AnonymousID: v.key, Jurisdiction: "EU",
		Timestamp: at.UTC().Format(time.RFC3339Nano), Consent: consent,
		Context:    map[string]any{"page_url": page, "user_agent": "Mozilla/5.0 (X11; Linux x86_64) tollgate-demo"},
		Properties: map[string]any{"order_value": 49.0, "currency": "EUR", "session_id": "s-" + v.key},
	}
}

// banner runs the scenario: the visitors' first events one request at a time (pause apart), the
// answers after read, then the accepting visitor's purchase. It prints what it sent and when,
// and returns the events accepted.
func banner(url, key, prefix string, pause, read time.Duration) (int, error) {
	vs := visitors(prefix)
	sent := 0
	for i, p := range bannerPages {
		for _, v := range vs {
			if err := sample.PostJSON(url+"/v1/events", key, bannerEvent(v, i+1, p.event, p.page, time.Now(), nil), false, nil); err != nil {
				return sent, err
			}
			sent++
		}
		time.Sleep(pause)
	}
	fmt.Printf("banner: %d visitors sent %d events each with no choice yet (%s)\n", len(vs), len(bannerPages), time.Now().Format("15:04:05.0"))
	time.Sleep(read)
	for _, v := range vs {
		if v.answer == nil {
			fmt.Printf("banner: %s never answers: held until the policy's window passes\n", v.key)
			continue
		}
		body := map[string]any{"anonymous_id": v.key, "consent": v.answer, "notice_version": "v3"}
		if err := sample.PostJSON(url+"/v1/consent", key, body, false, nil); err != nil {
			return sent, err
		}
		fmt.Printf("banner: %s clicked %s at %s\n", v.key, v.button, time.Now().Format("15:04:05.0"))
	}
	after := bannerEvent(vs[0], len(bannerPages)+1, "purchase", "https://shop.example/checkout", time.Now(), vs[0].answer)
	if err := sample.PostJSON(url+"/v1/events", key, after, false, nil); err != nil {
		return sent, err
	}
	sent++
	fmt.Printf("banner: %s bought after the click\n", vs[0].key)
	return sent, nil
}
