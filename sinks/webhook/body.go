package webhook

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// appendBody appends the request body of a batch: {"events": [event, …]}, each event
// {"event_id", "event", "timestamp", "user_id"?, "anonymous_id"?, "context"?, "properties"?}
// with context and properties keys sorted. The bytes are exactly what encoding/json makes of
// that shape (webhook_test.go checks it against json.Marshal). It is written by hand because
// json.Marshal of per-event maps of json.RawMessage was the largest cost of a webhook request in
// the sink's profile: maps built per event, sorted by reflection, every value scanned again.
func appendBody(b []byte, batch []*schemas.FilteredEvent) []byte {
	b = append(b, `{"events":[`...)
	var ctx, props []field
	for i, ev := range batch {
		if i > 0 {
			b = append(b, ',')
		}
		var user, anon json.RawMessage
		ctx, props = ctx[:0], props[:0]
		for path := range ev.Fields {
			v, _ := sdk.FieldJSON(ev, path)
			head, name, nested := strings.Cut(path, ".")
			switch {
			case !nested && head == "user_id":
				user = v
			case !nested && head == "anonymous_id":
				anon = v
			case nested && head == "context":
				ctx = append(ctx, field{name, v})
			case nested && head == "properties":
				props = append(props, field{name, v})
			}
		}
		b = append(b, `{"event_id":`...)
		b = sdk.AppendJSONString(b, ev.EventID)
		b = append(b, `,"event":`...)
		b = sdk.AppendJSONString(b, ev.Event)
		b = append(b, `,"timestamp":"`...)
		b = sdk.EventTime(ev).UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
		b = append(b, '"')
		if len(user) > 0 {
			b = append(b, `,"user_id":`...)
			b = sdk.AppendJSONRaw(b, user)
		}
		if len(anon) > 0 {
			b = append(b, `,"anonymous_id":`...)
			b = sdk.AppendJSONRaw(b, anon)
		}
		b = appendObject(b, `,"context":`, ctx)
		b = appendObject(b, `,"properties":`, props)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

type field struct {
	name  string
	value json.RawMessage
}

// appendObject appends key and an object of fields sorted by name (nothing when there are none).
func appendObject(b []byte, key string, fs []field) []byte {
	if len(fs) == 0 {
		return b
	}
	slices.SortFunc(fs, func(x, y field) int { return strings.Compare(x.name, y.name) })
	b = append(b, key...)
	b = append(b, '{')
	for i, f := range fs {
		if i > 0 {
			b = append(b, ',')
		}
		b = sdk.AppendJSONString(b, f.name)
		b = append(b, ':')
		b = sdk.AppendJSONRaw(b, f.value)
	}
	return append(b, '}')
}
