package report

import (
	"html/template"
	"io"
	"time"
)

type exposureDestView struct {
	ExposureDestination
	Blocked []exposureBlockedView
	Fields  []exposureFieldView
}

type exposureBlockedView struct {
	ExposureBlocked
	Words       string
	First, Last *time.Time // for fmtTime
}

type exposureFieldView struct {
	ExposureField
	Field       fieldView
	First, Last *time.Time
}

// WriteHTML renders the exposure report as one self-contained HTML page.
func (e *Exposure) WriteHTML(w io.Writer) error {
	dests := make([]exposureDestView, len(e.Destinations))
	for i, d := range e.Destinations {
		v := exposureDestView{ExposureDestination: d}
		for _, b := range d.Blocked {
			v.Blocked = append(v.Blocked, exposureBlockedView{ExposureBlocked: b, Words: exposureReason(b.Reason), First: &b.First, Last: &b.Last})
		}
		for _, f := range d.Fields {
			v.Fields = append(v.Fields, exposureFieldView{ExposureField: f, Field: fieldView{Label: f.Label, Path: f.Path}, First: &f.First, Last: &f.Last})
		}
		dests[i] = v
	}
	return pages.ExecuteTemplate(w, "exposure.html", map[string]any{
		"CSS": template.CSS(css), "RunID": e.RunID, "GeneratedAt": &e.GeneratedAt, "PolicyVersions": e.PolicyVersions,
		"Database": e.Database, "Destinations": dests,
	})
}
