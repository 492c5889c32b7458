package backoff

import (
	"context"
	"testing"
	"time"
)

func TestCeilDoublesAndCaps(t *testing.T) {
	p := Policy{Initial: 100 * time.Millisecond, Max: time.Second}
	for attempt, want := range map[int]time.Duration{0: 100 * time.Millisecond, 1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 80: time.Second} {
		if got := p.Ceil(attempt); got != want {
			t.Errorf("Ceil(%d) = %v, want %v", attempt, got, want)
		}
	}
}

func TestJitterStaysInRange(t *testing.T) {
	p := Policy{Initial: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	for attempt := 1; attempt < 8; attempt++ {
		c := p.Ceil(attempt)
		for range 200 {
			if d := p.Full(attempt); d < 0 || d > c {
				t.Fatalf("Full(%d) = %v outside [0, %v]", attempt, d, c)
			}
			if d := p.Equal(attempt); d < c/2 || d > c {
				t.Fatalf("Equal(%d) = %v outside [%v, %v]", attempt, d, c/2, c)
			}
		}
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); err != context.Canceled {
		t.Fatalf("Sleep on a cancelled context = %v, want context.Canceled", err)
	}
	if err := Sleep(context.Background(), 0); err != nil {
		t.Fatalf("Sleep(0) = %v", err)
	}
}
