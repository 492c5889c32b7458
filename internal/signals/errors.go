package signals

import "fmt"

// FieldError is a signal that cannot be read. Field is the path of the offending member inside
// the object that carries the signals ("tcf", "gpp", "gpp_sid[1]", "gcm.ad_storage",
// "consentManagement.provider"); the caller, which knows where that object sits in its own
// body (consent_signals, context.consent, context), prefixes it.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
