package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/tollgate-dev/tollgate/schemas"
)

// MaxResponseBody bounds how much of a vendor's answer Send reads for classification: enough for
// any vendor's error body, and a hostile endpoint cannot make a sink buffer more.
const MaxResponseBody = 64 << 10

// Send makes one delivery attempt of a batch: the adapter's request, sent with client (from
// NewHTTPClient, so the SSRF guard applies), and the adapter's reading of the answer, with the
// verdict's Status set. It is the one attempt the delivery engine makes per request, and what
// adapter tests run against the vendor stand-ins.
//
// Transport failures (refused, reset, timeout) are temporary: Class Retry, Reason "timeout" or
// "connection_error". The returned error is not nil only when the adapter could not build the
// request (the verdict is then Permanent "build_request"); it is for the log, and may name
// configuration, never event data.
func Send(ctx context.Context, client *http.Client, a Adapter, batch []*schemas.FilteredEvent) (Verdict, error) {
	req, err := a.NewRequest(ctx, batch)
	if err != nil {
		return Verdict{Class: Permanent, Reason: "build_request", Split: len(batch) > 1}, fmt.Errorf("build request: %w", err)
	}
	resp, err := client.Do(req)
	if errors.Is(err, ErrPrivateAddress) {
		// Only a policy change (allow_private_network) can fix this: retrying would not help.
		return Verdict{Class: Permanent, Reason: "private_address_refused"}, nil
	}
	if err != nil {
		return Verdict{Class: Retry, Reason: transportReason(err)}, nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody))
	if err != nil && resp.StatusCode < 300 {
		// The status said yes but the answer broke off: for vendors that report errors in the
		// body (TikTok) the answer is unknown, so it is a temporary failure.
		return Verdict{Class: Retry, Reason: transportReason(err), Status: resp.StatusCode}, nil
	}
	v := a.Classify(resp.StatusCode, resp.Header, body, batch)
	v.Status = resp.StatusCode
	return v, nil
}

// transportReason names a transport failure without echoing URLs (they may carry secrets).
func transportReason(err error) string {
	var ne interface{ Timeout() bool }
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	default:
		return "connection_error"
	}
}
