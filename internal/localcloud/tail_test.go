package localcloud

import (
	"strings"
	"sync"
	"testing"
)

func TestTailBufferKeepsTheEnd(t *testing.T) {
	tb := NewTailBuffer(8)
	_, _ = tb.Write([]byte("0123456"))
	_, _ = tb.Write([]byte("789abc"))
	if got := tb.String(); got != "56789abc" {
		t.Fatalf("tail = %q, want %q", got, "56789abc")
	}
	// One write longer than max keeps only its end.
	if n, err := tb.Write([]byte("ABCDEFGHIJKL")); n != 12 || err != nil {
		t.Fatalf("Write = %d, %v; want 12, nil", n, err)
	}
	if got := tb.String(); got != "EFGHIJKL" {
		t.Fatalf("tail = %q, want %q", got, "EFGHIJKL")
	}
}

func TestTailBufferZeroMax(t *testing.T) {
	for _, max := range []int{0, -1} {
		tb := NewTailBuffer(max)
		_, _ = tb.Write([]byte("abc"))
		if got := tb.String(); got != "" {
			t.Errorf("NewTailBuffer(%d): tail = %q, want empty", max, got)
		}
	}
}

func TestTailBufferConcurrent(t *testing.T) {
	const max = 64
	tb := NewTailBuffer(max)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				_, _ = tb.Write([]byte("xxxxxxxxxx\n"))
				_ = tb.String()
			}
		}()
	}
	wg.Wait()
	got := tb.String()
	if len(got) != max || strings.Trim(got, "x\n") != "" {
		t.Fatalf("tail = %q (%d bytes), want %d bytes of the writes", got, len(got), max)
	}
}
