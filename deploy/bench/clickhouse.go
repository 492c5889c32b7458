package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// chClient queries ClickHouse over HTTP (TabSeparated output): the bench's reads are few and
// tiny, and keeping them off the native protocol keeps the bench independent of the code under test.
type chClient struct {
	base string
	http *http.Client
}

func (c chClient) query(ctx context.Context, q string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/?"+url.Values{"query": {q}}.Encode(), nil)
	if err != nil {
		return "", err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("clickhouse: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

func (c chClient) count(ctx context.Context, q string) (int64, error) {
	s, err := c.query(ctx, q)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(s), 10, 64)
}

// waitCount polls q (a count) every interval until it reaches want or timeout passes, and
// returns the time it first saw want (zero if never) and the last count.
func (c chClient) waitCount(ctx context.Context, q string, want int64, interval, timeout time.Duration) (time.Time, int64) {
	deadline := time.Now().Add(timeout)
	var n int64
	for time.Now().Before(deadline) {
		var err error
		if n, err = c.count(ctx, q); err == nil && n >= want {
			return time.Now(), n
		}
		select {
		case <-ctx.Done():
			return time.Time{}, n
		case <-time.After(interval):
		}
	}
	return time.Time{}, n
}
