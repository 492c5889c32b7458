package ingest

import (
	"time"

	"github.com/tollgate-dev/tollgate/schemas"
)

// DecodeEvent validates one native event (the body of POST /v1/events without a batch) exactly as
// ingest does and returns it as the processor would receive it. `tollgate policy explain|test` use
// it so a case file's event means what the same JSON sent to ingest would mean. received stands
// for the receive time (the event time when the event has none); a request's headers add nothing.
func DecodeEvent(b []byte, received time.Time) (*schemas.Event, error) {
	d := &decoder{received: received}
	return d.nativeEvent(b)
}
