package policy

import (
	"slices"
	"strings"
)

// Labels name kinds of information in words for the reports a person reads (the access report,
// the exposure report): "e-mail address", with the field path beside it in small type. The
// common paths have a label built in; the policy's top-level `labels:` (field path → words)
// names the others and may override a built-in one.
var builtinLabels = map[string]string{
	"user_id":                "account identifier",
	"anonymous_id":           "browser identifier (cookie)",
	"context.page_url":       "page address",
	"context.page_title":     "page title",
	"context.referrer":       "address of the previous page",
	"context.user_agent":     "browser and device type",
	"context.ip":             "IP address",
	"context.locale":         "language setting",
	"context.timezone":       "time zone",
	"context.campaign":       "advertising campaign",
	"context.library":        "tracking software",
	"properties.email":       "e-mail address",
	"properties.phone":       "phone number",
	"properties.first_name":  "first name",
	"properties.last_name":   "last name",
	"properties.name":        "name",
	"properties.address":     "postal address",
	"properties.city":        "city",
	"properties.zip":         "postcode",
	"properties.country":     "country",
	"properties.birthdate":   "date of birth",
	"properties.gender":      "gender",
	"properties.order_id":    "order number",
	"properties.order_value": "order value",
	"properties.revenue":     "order value",
	"properties.value":       "value",
	"properties.currency":    "currency",
	"properties.products":    "products bought",
	"properties.session_id":  "visit identifier",
	"properties.fbclid":      "Facebook ad click identifier",
	"properties.gclid":       "Google ad click identifier",
	"properties.ttclid":      "TikTok ad click identifier",
	"properties.error":       "error message",
	"properties.search":      "search terms",
}

// Label is the words for a field path: the policy's own label, else the built-in one, else the
// field's name with its underscores as spaces ("properties.loyalty_tier" → "loyalty tier").
func (p *Policy) Label(path string) string {
	if l := p.Labels[path]; l != "" {
		return l
	}
	if l := builtinLabels[path]; l != "" {
		return l
	}
	_, name, ok := strings.Cut(path, ".")
	if !ok {
		name = path
	}
	return strings.ReplaceAll(name, "_", " ")
}

// validateLabels checks that every label names a field path and says something.
func (p *Policy) validateLabels() error {
	paths := make([]string, 0, len(p.Labels))
	for path := range p.Labels {
		paths = append(paths, path)
	}
	slices.Sort(paths) // report the first bad one deterministically
	for _, path := range paths {
		if err := CheckFieldPath(path); err != nil {
			return fieldErr("labels", "%v", err)
		}
		if strings.TrimSpace(p.Labels[path]) == "" {
			return fieldErr("labels", "%q: the label is empty (say in words what the field holds)", path)
		}
	}
	return nil
}
