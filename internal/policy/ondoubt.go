package policy

import "slices"

// on_doubt modes of a destination (CONTRACT §9, docs/delivery.md "Deliveries in doubt").
const (
	// OnDoubtSkip: an event whose request may or may not have reached the vendor is not sent
	// again (it may be missing at the vendor, never counted twice).
	OnDoubtSkip = "skip"
	// OnDoubtResend: it is sent again (it may be counted twice, never missing).
	OnDoubtResend = "resend"
)

// dedupByEventID are the destination types whose vendor drops a second copy of an event by its
// id (Meta and TikTok event_id, Google Ads transactionId, a webhook receiver's webhook-id): an
// event in doubt is always sent again to them, whatever on_doubt says.
var dedupByEventID = []string{TypeMetaCAPI, TypeTikTok, TypeGoogleAds, TypeWebhook}

// ResendInDoubt reports whether the events of a request in doubt are sent again: always where
// the vendor dedups by event id, else as on_doubt says (default skip).
func (d *Destination) ResendInDoubt() bool {
	return slices.Contains(dedupByEventID, d.Type) || d.OnDoubt == OnDoubtResend
}

// checkOnDoubt validates a destination's on_doubt; at is the destination's path.
func checkOnDoubt(at string, d *Destination) error {
	switch d.OnDoubt {
	case "", OnDoubtSkip, OnDoubtResend:
		return nil
	}
	return fieldErr(at+".on_doubt", "must be %q or %q, not %q", OnDoubtSkip, OnDoubtResend, d.OnDoubt)
}
