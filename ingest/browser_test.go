package ingest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSnippetServed(t *testing.T) {
	h := newHarnessWith(t, "", &failingProducer{})
	code, hd, body := h.do("GET", "/tg.js", "", nil)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "text/javascript; charset=utf-8", hd.Get("Content-Type"))
	assert.Equal(t, "nosniff", hd.Get("X-Content-Type-Options"))
	assert.Equal(t, string(snippet), body)
	assert.Less(t, len(snippet), 12<<10, "tg.js should stay small (about 9 KB with the CMP readers)")
	// The snippet may talk to its own origin only: no absolute URL to another host in it.
	assert.NotRegexp(t, `https?://`, stripComments(body))

	code, _, _ = h.do("GET", "/tg.js", "", hdr{"If-None-Match": hd.Get("ETag")})
	assert.Equal(t, http.StatusNotModified, code)
}

// stripComments drops /* */ and // comments, which document URLs but never fetch them.
func stripComments(js string) string {
	var b strings.Builder
	for len(js) > 0 {
		switch {
		case strings.HasPrefix(js, "/*"):
			end := strings.Index(js, "*/")
			if end < 0 {
				return b.String()
			}
			js = js[end+2:]
		case strings.HasPrefix(js, "//") && (b.Len() == 0 || b.String()[b.Len()-1] != ':'):
			end := strings.IndexByte(js, '\n')
			if end < 0 {
				return b.String()
			}
			js = js[end:]
		default:
			b.WriteByte(js[0])
			js = js[1:]
		}
	}
	return b.String()
}

func TestDemoPageOnlyWhenConfigured(t *testing.T) {
	off := newHarnessWith(t, "", &failingProducer{})
	code, _, _ := off.do("GET", "/demo/", "", nil)
	assert.Equal(t, http.StatusNotFound, code, "the demo page is off by default")

	on := newHarnessWith(t, "  demo_page: true\n", &failingProducer{})
	code, hd, body := on.do("GET", "/demo/", "", nil)
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, hd.Get("Content-Security-Policy"), "connect-src 'self'")
	assert.Contains(t, body, `<script src="/tg.js" data-write-key="`+testKey+`">`)
	for _, id := range []string{"accept-all", "reject-all", "customise"} {
		assert.Contains(t, body, `id="`+id+`"`)
	}
	for _, f := range []string{"/demo/demo.js", "/demo/demo.css"} {
		code, hd, _ := on.do("GET", f, "", nil)
		assert.Equal(t, http.StatusOK, code, f)
		assert.NotEmpty(t, hd.Get("Content-Security-Policy"), f)
	}
	code, _, _ = on.do("GET", "/demo/index.html", "", nil)
	assert.Equal(t, http.StatusNotFound, code, "the raw template is not served")
	rec := httptest.NewRecorder()
	on.srv.ServeHTTP(rec, httptest.NewRequest("GET", "/demo", nil))
	assert.Equal(t, "/demo/", rec.Header().Get("Location"))
}

// TestSegmentContextGPC: tg.js relays navigator.globalPrivacyControl as context.gpc, which adds
// to the Sec-GPC header and never clears it.
func TestSegmentContextGPC(t *testing.T) {
	h := newHarness(t, "")
	body := `{"writeKey": "` + testKey + `", "batch": [
	  {"type": "track", "messageId": "on", "event": "x", "anonymousId": "a", "context": {"gpc": true}},
	  {"type": "track", "messageId": "off", "event": "x", "anonymousId": "a", "context": {"gpc": false}},
	  {"type": "track", "messageId": "none", "event": "x", "anonymousId": "a"},
	  {"type": "track", "messageId": "bad", "event": "x", "anonymousId": "a", "context": {"gpc": "1"}}]}`
	code, _, reply := h.do("POST", "/v1/batch", body, nil)
	require.Equal(t, http.StatusOK, code, reply)
	assert.Contains(t, reply, `field \"context.gpc\" must be true or false`)
	evs := h.events(3)
	assert.True(t, evs["on"].GPC)
	assert.False(t, evs["off"].GPC)
	assert.False(t, evs["none"].GPC)

	h2 := newHarness(t, "")
	code, _, reply = h2.do("POST", "/v1/batch", body, hdr{"Sec-GPC": "1"})
	require.Equal(t, http.StatusOK, code, reply)
	for id, ev := range h2.events(3) {
		assert.True(t, ev.GPC, "Sec-GPC: 1 marks %s whatever its context.gpc", id)
	}
}
