// Command traffic sends the demo's sample traffic to a tollgate ingest endpoint: events with every
// consent combination, GPC and non-GPC, EU, US-CA and default jurisdictions, some on health pages,
// and a marketing withdrawal by one user half-way through. It prints how many events were accepted.
// With -banner it runs the banner scenario instead (banner.go): visitors who browse before
// answering an opt-in banner, their events held until they answer.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/tollgate-dev/tollgate/internal/sample"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "ingest base URL")
	key := flag.String("key", "wk_demo", "write key")
	n := flag.Int("events", 300, "events to send")
	users := flag.Int("users", 40, "distinct users")
	bannerPrefix := flag.String("banner", "", "if set, run only the banner scenario (banner.go), its visitors' ids starting with this")
	flag.Parse()
	if *bannerPrefix != "" {
		n, err := banner(*url, *key, *bannerPrefix, 300*time.Millisecond, 2*time.Second)
		if err != nil {
			fmt.Fprintln(os.Stderr, "traffic:", err)
			os.Exit(1)
		}
		fmt.Printf("banner: %d events accepted\n", n)
		return
	}
	events := sample.Events(uint64(time.Now().Unix()), *n, *users, time.Now().Add(-time.Minute))
	half := len(events) / 2
	a, err := sample.Send(*url, *key, events[:half])
	if err == nil {
		// User 0 withdraws marketing consent: their later events must not reach meta.
		err = sample.Withdraw(*url, *key, events[0], "marketing")
	}
	b := 0
	if err == nil {
		b, err = sample.Send(*url, *key, events[half:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "traffic:", err)
		os.Exit(1)
	}
	fmt.Printf("traffic: %d events accepted, 1 withdrawal recorded\n", a+b)
}
