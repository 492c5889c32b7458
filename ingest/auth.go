package ingest

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// writeKeys checks write keys in constant time. Keys are kept as SHA-256 digests so every
// comparison is between two 32-byte values: subtle.ConstantTimeCompare returns early on a length
// mismatch, which would leak the length of the configured keys.
type writeKeys struct {
	digests [][sha256.Size]byte
}

func newWriteKeys(keys []string) writeKeys {
	wk := writeKeys{digests: make([][sha256.Size]byte, 0, len(keys))}
	for _, k := range keys {
		if k != "" { // config validation refuses empty keys; never let "" authenticate anyway
			wk.digests = append(wk.digests, sha256.Sum256([]byte(k)))
		}
	}
	return wk
}

// valid reports whether key is one of the configured write keys. It compares against every key,
// without stopping at a match, so timing says nothing about which key (or how many) matched.
func (wk writeKeys) valid(key string) bool {
	if key == "" {
		return false
	}
	d := sha256.Sum256([]byte(key))
	match := 0
	for i := range wk.digests {
		match |= subtle.ConstantTimeCompare(d[:], wk.digests[i][:])
	}
	return match == 1
}

// bearerKey returns the token of an "Authorization: Bearer <token>" header, or "". The scheme is
// matched case-insensitively (RFC 7235 §2.1).
func bearerKey(r *http.Request) string {
	h := r.Header.Get("Authorization")
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return ""
	}
	return strings.TrimSpace(h[len(scheme):])
}

// basicKey returns the user name of HTTP basic auth, which Segment-compatible SDKs set to the
// write key (the password is empty and ignored, as Segment does), or "".
func basicKey(r *http.Request) string {
	user, _, ok := r.BasicAuth()
	if !ok {
		return ""
	}
	return user
}

// unauthorized answers 401 with a challenge for the scheme the endpoint expects.
func (s *Server) unauthorized(w http.ResponseWriter, scheme string) {
	s.metrics.rejected(reasonUnauthorized, 1)
	w.Header().Set("WWW-Authenticate", scheme+` realm="tollgate"`)
	writeJSON(w, http.StatusUnauthorized, errorBody{Error: "missing or unknown write key"})
}
