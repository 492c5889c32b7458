package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// saveProfiles fetches a CPU profile cpuFor long (-profile-for) and then a heap profile from each
// component's pprof listener (debug.pprof_listen), starting 3 s into the phase so the load is
// steady, and beside them a 3 s execution trace (`go tool trace -pprof=sync|net FILE` shows where goroutines wait:
// what bounds a component that is not using its CPU).
func saveProfiles(ctx context.Context, dir string, cpuFor time.Duration, addrs map[string]string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		logf("profiles: %v", err)
		return
	}
	select {
	case <-ctx.Done():
		return
	case <-time.After(3 * time.Second):
	}
	var wg sync.WaitGroup
	for name, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan struct{})
			go func() {
				defer close(done)
				fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/trace?seconds=3", addr), filepath.Join(dir, name+".trace"))
			}()
			fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, max(1, int(cpuFor.Seconds()))), filepath.Join(dir, name+".cpu.pprof"))
			<-done
			fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/heap", addr), filepath.Join(dir, name+".heap.pprof"))
		}()
	}
	wg.Wait()
	logf("profiles saved in %s (go tool pprof -top %s/<component>.cpu.pprof)", dir, dir)
}

func fetch(ctx context.Context, url, path string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		logf("profile %s: %v", url, err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
}
