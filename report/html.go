package report

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"slices"
	"strings"
	"time"
)

// The HTML reports are single files: the stylesheet is inlined, nothing is fetched (no fonts,
// scripts or images), so they can be mailed, archived and printed as they are.

//go:embed templates
var templates embed.FS

var (
	css   string
	pages = template.Must(template.New("").Funcs(template.FuncMap{
		"join": func(s []string) string {
			if len(s) == 0 {
				return "none"
			}
			return strings.Join(s, ", ")
		},
		"fmtTime": func(t *time.Time) string {
			if t == nil {
				return ""
			}
			return t.UTC().Format("2 January 2006, 15:04 UTC")
		},
	}).ParseFS(templates, "templates/*.html"))
)

func init() {
	b, err := templates.ReadFile("templates/style.css")
	if err != nil {
		panic(err) // embedded: cannot happen
	}
	css = string(b)
}

// reasonText says in plain words why an event was withheld.
var reasonText = map[string]string{
	"no_consent": "no consent given",
	"opted_out":  "you opted out",
	"withdrawn":  "you withdrew consent",
	"gpc":        "Global Privacy Control signal",
	"sensitive":  "sensitive page",
	"erased":     "after your erasure",
}

type accessDestView struct {
	AccessDestination
	Blocked  []string
	Delivery []string
	// Held says in words how the user's events waited for their choice ("" when none did).
	Held string
	// Sent and Hashed are FieldsSent and FieldsHashed in words (labels.go).
	Sent, Hashed []fieldView
}

// WriteHTML renders the access report as one self-contained HTML page.
func (a *Access) WriteHTML(w io.Writer) error {
	dests := make([]accessDestView, len(a.Destinations))
	for i, d := range a.Destinations {
		v := accessDestView{AccessDestination: d, Sent: fieldViews(d.FieldsSent, a.Labels), Hashed: fieldViews(d.FieldsHashed, a.Labels)}
		for _, r := range sortedKeys(d.BlockedBy) {
			text := reasonText[r]
			if text == "" {
				text = r
			}
			v.Blocked = append(v.Blocked, fmt.Sprintf("%s: %d", text, d.BlockedBy[r]))
		}
		for _, s := range sortedKeys(d.Deliveries) {
			v.Delivery = append(v.Delivery, fmt.Sprintf("%s: %d", s, d.Deliveries[s]))
		}
		v.Held = heldText(d)
		dests[i] = v
	}
	return pages.ExecuteTemplate(w, "access.html", map[string]any{
		"CSS": template.CSS(css), "User": a.User, "GeneratedAt": &a.GeneratedAt, "PolicyVersions": a.PolicyVersions,
		"Erased": a.Erased, "ErasedAt": a.ErasedAt, "AnonymizeAfter": a.AnonymizeAfter, "Destinations": dests,
	})
}

// WriteHTML renders the record of processing as one self-contained HTML page.
func (p *Processing) WriteHTML(w io.Writer) error {
	return pages.ExecuteTemplate(w, "processing.html", map[string]any{
		"CSS": template.CSS(css), "PolicyFile": p.PolicyFile, "PolicyVersion": p.PolicyVersion, "GeneratedAt": &p.GeneratedAt,
		"Purposes": p.Purposes, "Jurisdictions": p.Jurisdictions, "Sensitive": p.Sensitive, "Retention": p.Retention,
		"Destinations": p.Destinations,
	})
}

// heldText says how many of a destination's events waited for the user's choice, how long at
// most, and what became of them; "" when none waited.
func heldText(d AccessDestination) string {
	if d.EventsHeld == 0 {
		return ""
	}
	return fmt.Sprintf("%d, for up to %s; %d sent once you chose, %d withheld", d.EventsHeld, HeldDuration(d.HeldMaxMs),
		d.EventsHeldSent, d.EventsHeld-d.EventsHeldSent)
}

// HeldDuration is a hold's length for a person (the access report, `tollgate audit user`):
// seconds with one decimal below a minute, else rounded to the second ("2m30s").
func HeldDuration(ms uint32) string {
	if ms < 60_000 {
		return fmt.Sprintf("%.1f s", float64(ms)/1000)
	}
	return (time.Duration(ms) * time.Millisecond).Round(time.Second).String()
}

func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
