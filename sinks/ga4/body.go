package ga4

import (
	"strconv"

	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// appendBody appends the Measurement Protocol body of a batch of one client's events:
//
//	{"client_id", "timestamp_micros", "consent": {"ad_user_data", "ad_personalization"},
//	 "events": [{"name", "params": {…}, "timestamp_micros"}, …]}
//
// where an event's timestamp_micros overrides the request's. The bytes are exactly what
// encoding/json made of the struct-and-map body this replaced (body_test.go keeps that shape and
// checks it). It is written by hand because json.Marshal of a params map per event, its keys
// sorted by reflection, was half of NewRequest's cost in the sink's profile.
func (a *adapter) appendBody(b []byte, batch []*schemas.FilteredEvent, adUserData, adPersonalization string) []byte {
	b = append(b, `{"client_id":`...)
	b = sdk.AppendJSONString(b, batch[0].UserKey)
	b = append(b, `,"timestamp_micros":`...)
	b = strconv.AppendInt(b, batch[0].TimestampMs*1000, 10)
	b = append(b, `,"consent":{"ad_user_data":`...)
	b = sdk.AppendJSONString(b, adUserData)
	b = append(b, `,"ad_personalization":`...)
	b = sdk.AppendJSONString(b, adPersonalization)
	b = append(b, `},"events":[`...)
	for i, ev := range batch {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = sdk.AppendJSONString(b, sanitise(ev.Event))
		b = append(b, `,"params":`...)
		b = a.appendParams(b, ev)
		b = append(b, `,"timestamp_micros":`...)
		b = strconv.AppendInt(b, ev.TimestampMs*1000, 10)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// appendParams appends an event's params object. a.params is already in key order, and
// engagement_time_msec is always there, so the object is never empty.
func (a *adapter) appendParams(b []byte, ev *schemas.FilteredEvent) []byte {
	b = append(b, '{')
	first := true
	for _, p := range a.params {
		v, number, ok := a.paramValue(ev, p)
		if !ok {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = sdk.AppendJSONString(b, p.name)
		b = append(b, ':')
		if number {
			b = append(b, v...) // a valid JSON number: json.Number wrote it unchanged
		} else {
			b = sdk.AppendJSONString(b, v)
		}
	}
	return append(b, '}')
}
