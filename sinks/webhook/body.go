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
		b = appendString(b, ev.EventID)
		b = append(b, `,"event":`...)
		b = appendString(b, ev.Event)
		b = append(b, `,"timestamp":"`...)
		b = sdk.EventTime(ev).UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
		b = append(b, '"')
		if len(user) > 0 {
			b = append(b, `,"user_id":`...)
			b = appendRaw(b, user)
		}
		if len(anon) > 0 {
			b = append(b, `,"anonymous_id":`...)
			b = appendRaw(b, anon)
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
		b = appendString(b, f.name)
		b = append(b, ':')
		b = appendRaw(b, f.value)
	}
	return append(b, '}')
}

// appendString appends s as encoding/json writes a string: quoted as is when it holds only
// printable ASCII that needs no escape (HTML characters included, as json.Marshal escapes
// them), else through json.Marshal.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plain(s[i]) || s[i] == '"' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendRaw appends a valid JSON value as json.Marshal writes a json.RawMessage (compacted, with
// HTML characters and U+2028/U+2029 escaped): as is when it has no byte that could change.
func appendRaw(b []byte, v json.RawMessage) []byte {
	for _, c := range v {
		if !plain(c) || c == ' ' {
			q, err := json.Marshal(v)
			if err != nil { // unreachable: FieldJSON returns valid JSON only
				return append(b, "null"...)
			}
			return append(b, q...)
		}
	}
	return append(b, v...)
}

// plain reports whether encoding/json copies c unchanged: printable ASCII other than the
// backslash and the HTML characters it escapes.
func plain(c byte) bool {
	return c >= 0x20 && c < 0x7f && c != '\\' && c != '<' && c != '>' && c != '&'
}
