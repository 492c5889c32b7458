package policy

import (
	"fmt"
	"time"
)

// Oldest event each vendor accepts, by destination type: what `tollgate repair` never sends
// (counted too_old) and what the adapters' Validate refuses. Checked against the vendors' pages
// in December 2026 (docs/privacy-teams.md "Repair after a policy fix"):
//   - ga4: "events can be backdated up to 72 hours" (Measurement Protocol, sending events);
//   - meta_capi: "event_time can be up to 7 days before you send an event ... greater than 7
//     days in the past, we return an error for the entire request" (server event parameters);
//   - tiktok: 7 days, as CONTRACT §9 fixes it; TikTok's own pages found say nothing firm for web
//     events, integrators document 28 days with 7-day view-through attribution: 7 is the safe side;
//   - google_ads: 90 days, the longest click-through conversion window (unconfirmed on an
//     official page for the Data Manager API);
//   - webhook: the destination's config.max_event_age, default DefaultWebhookMaxEventAge.
var vendorMaxAge = map[string]time.Duration{
	TypeGA4:       72 * time.Hour,
	TypeMetaCAPI:  7 * 24 * time.Hour,
	TypeTikTok:    7 * 24 * time.Hour,
	TypeGoogleAds: 90 * 24 * time.Hour,
}

// DefaultWebhookMaxEventAge is a webhook destination's max_event_age when its config sets none.
const DefaultWebhookMaxEventAge = 7 * 24 * time.Hour

// MaxEventAge is the oldest event (by its own time) the destination's vendor accepts.
func (d *Destination) MaxEventAge() time.Duration {
	if d.Type == TypeWebhook {
		if d.maxEventAge > 0 {
			return d.maxEventAge
		}
		return DefaultWebhookMaxEventAge
	}
	return vendorMaxAge[d.Type]
}

// validateMaxEventAge reads a webhook's config.max_event_age ("168h", "72h30m"): a positive Go
// duration. Other types take their vendor's fixed limit, so the key is refused there.
func (d *Destination) validateMaxEventAge(at string) error {
	v, ok := d.Config["max_event_age"]
	if !ok {
		return nil
	}
	if d.Type != TypeWebhook {
		return fieldErr(at+".config.max_event_age", "only a webhook destination sets it (%s accepts events up to %s old)", d.Type, vendorMaxAge[d.Type])
	}
	s, isString := v.(string)
	age, err := time.ParseDuration(s)
	if !isString || err != nil || age <= 0 {
		return fieldErr(at+".config.max_event_age", "must be a positive duration such as \"168h\", not %v", fmt.Sprint(v))
	}
	d.maxEventAge = age
	return nil
}
