package localcloud

import "sync"

// TailBuffer keeps the last max bytes written to it, for error messages: a command's
// output goes to a log and to a TailBuffer, and the error quotes the buffer. It is
// safe for concurrent Write and String.
type TailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

// NewTailBuffer returns a TailBuffer that keeps the last max bytes (none if max is
// not positive).
func NewTailBuffer(max int) *TailBuffer {
	if max < 0 {
		max = 0
	}
	return &TailBuffer{max: max}
}

// Write keeps the end of p, and of what came before, up to max bytes; it never
// fails.
func (t *TailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// String returns the bytes kept.
func (t *TailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
