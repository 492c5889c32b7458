package policy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// ContextFields are the names a context.* field path may use: the ones ingest fills from the
// request and the common Segment context fields.
var ContextFields = []string{"page_url", "page_title", "referrer", "user_agent", "ip", "locale", "timezone", "campaign", "library"}

// TopLevelFields are the event's own fields a destination may list. Event name, event id and
// time are always sent; identifiers only when listed (data minimisation).
var TopLevelFields = []string{"user_id", "anonymous_id"}

var propertyName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// CheckFieldPath returns an error unless path names a field of the event (docs/api.md):
// user_id, anonymous_id, context.<known name> or properties.<name>.
func CheckFieldPath(path string) error {
	if slices.Contains(TopLevelFields, path) {
		return nil
	}
	head, name, ok := strings.Cut(path, ".")
	switch {
	case ok && head == "context" && slices.Contains(ContextFields, name):
		return nil
	case ok && head == "context":
		return fmt.Errorf("unknown field path %q (context fields: %s)", path, strings.Join(ContextFields, ", "))
	case ok && head == "properties" && propertyName.MatchString(name):
		return nil
	}
	return fmt.Errorf("unknown field path %q (use user_id, anonymous_id, context.<name> or properties.<name>)", path)
}
