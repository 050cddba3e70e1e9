package exec

import (
	"io"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/healthbridge/healthbridge/internal/probe"
)

// capture keeps the first max bytes written to it and counts the rest. Its
// Write never fails and never blocks, so a chatty child is never stalled on
// a full pipe: the reader keeps draining (as moby's limitedBuffer).
type capture struct {
	mu        sync.Mutex // guards buf and truncated
	buf       []byte
	max       int
	truncated bool
}

func newCapture(max int) *capture { return &capture{max: max} }

// Write implements io.Writer; it always reports len(p) written.
func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
		if len(p) > room {
			c.truncated = true
		}
	} else if len(p) > 0 {
		c.truncated = true
	}
	return len(p), nil
}

// String returns the kept bytes, cut back to a whole UTF-8 character and
// followed by probe.Truncated when more was written.
func (c *capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buf
	if c.truncated {
		// Do not leave half a character before the marker.
		if i := lastRuneStart(b); i < len(b) && !utf8.FullRune(b[i:]) {
			b = b[:i]
		}
		return strings.ToValidUTF8(string(b), "\uFFFD") + probe.Truncated
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

func lastRuneStart(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			return i
		}
	}
	return len(b)
}

// drainBufs holds drain's 32 KiB read buffers. io.Copy would allocate a
// fresh one for every run (the pipe's *os.File hides none from it): 32 KiB
// of a run's 40 KiB of garbage, and at one check a second most of what
// grows an idle sidecar's heap between collections.
var drainBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// drain copies r into c until r ends or fails.
func drain(c *capture, r io.Reader) {
	bp := drainBufs.Get().(*[]byte)
	defer drainBufs.Put(bp)
	for {
		n, err := r.Read(*bp)
		if n > 0 {
			_, _ = c.Write((*bp)[:n])
		}
		if err != nil {
			return
		}
	}
}
