package ingest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
)

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readBody reads at most MaxBodyBytes (after gzip decoding, which some SDKs use) into a pooled
// buffer; return it with releaseBody once nothing refers to its bytes. A body too large also
// closes the connection: the rest of it is not worth reading.
func readBody(w http.ResponseWriter, r *http.Request) (*bytes.Buffer, *requestError) {
	buf, rerr := readLimited(w, r)
	if rerr != nil && rerr.status == http.StatusRequestEntityTooLarge {
		w.Header().Set("Connection", "close")
	}
	return buf, rerr
}

func readLimited(w http.ResponseWriter, r *http.Request) (*bytes.Buffer, *requestError) {
	if r.ContentLength > MaxBodyBytes {
		return nil, tooLarge("body is larger than %d bytes", MaxBodyBytes)
	}
	var src io.Reader = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, bodyError(err)
		}
		defer zr.Close()
		src = io.LimitReader(zr, MaxBodyBytes+1) // a gzip bomb stops here
	default:
		return nil, &requestError{status: http.StatusUnsupportedMediaType, reason: reasonMalformed,
			msg: "Content-Encoding must be gzip or none"}
	}
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	if r.ContentLength > 0 && r.Header.Get("Content-Encoding") == "" {
		buf.Grow(int(r.ContentLength) + bytes.MinRead) // one allocation, not a doubling series
	}
	if _, err := buf.ReadFrom(src); err != nil {
		releaseBody(buf)
		return nil, bodyError(err)
	}
	if buf.Len() > MaxBodyBytes {
		releaseBody(buf)
		return nil, tooLarge("body is larger than %d bytes", MaxBodyBytes)
	}
	return buf, nil
}

func releaseBody(buf *bytes.Buffer) {
	if buf.Cap() <= 2*MaxBodyBytes {
		bodyPool.Put(buf)
	}
}

func bodyError(err error) *requestError {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return tooLarge("body is larger than %d bytes", MaxBodyBytes)
	case errors.Is(err, gzip.ErrHeader), errors.Is(err, gzip.ErrChecksum), errors.Is(err, io.ErrUnexpectedEOF):
		return malformed("body is not valid gzip or was cut short")
	}
	return malformed("cannot read body")
}
