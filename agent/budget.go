package agent

import (
	"context"
	"sync"
	"sync/atomic"
)

// budget bounds what has been read but not yet acknowledged: bytes (read buffers and the
// records made from them) and records. A reader that would go past either bound waits, which
// is how a slow or blocked sink pauses reading instead of growing memory.
type budget struct {
	mu         sync.Mutex
	bytes      int64
	records    int64
	maxBytes   int64
	maxRecords int64
	wake       chan struct{} // closed and replaced when something is released
}

func newBudget(maxBytes int64, maxRecords int) *budget {
	return &budget{maxBytes: maxBytes, maxRecords: int64(maxRecords)}
}

// acquire takes n bytes and r records, waiting while they do not fit. When nothing at all is
// in use the request is granted even if it is larger than the bound, so a single record bigger
// than the budget cannot wait forever.
func (b *budget) acquire(ctx context.Context, n, r int64) error {
	for {
		if b.tryAcquire(n, r) {
			return nil
		}
		b.mu.Lock()
		okBytes := n == 0 || b.bytes+n <= b.maxBytes || b.bytes == 0
		okRecs := r == 0 || b.records+r <= b.maxRecords || b.records == 0
		if okBytes && okRecs {
			b.bytes += n
			b.records += r
			b.mu.Unlock()
			return nil
		}
		if b.wake == nil {
			b.wake = make(chan struct{})
		}
		w := b.wake
		b.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// tryAcquire is acquire without waiting.
func (b *budget) tryAcquire(n, r int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if (n == 0 || b.bytes+n <= b.maxBytes || b.bytes == 0) && (r == 0 || b.records+r <= b.maxRecords || b.records == 0) {
		b.bytes += n
		b.records += r
		return true
	}
	return false
}

func (b *budget) release(n, r int64) {
	if n == 0 && r == 0 {
		return
	}
	b.mu.Lock()
	b.bytes -= n
	b.records -= r
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
	b.mu.Unlock()
}

func (b *budget) setLimits(maxBytes int64, maxRecords int) {
	b.mu.Lock()
	b.maxBytes, b.maxRecords = maxBytes, int64(maxRecords)
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
	b.mu.Unlock()
}

func (b *budget) used() (bytes, records int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bytes, b.records
}

// chunk is a read buffer that records point into, so lines are not copied on their way to the
// sink. Its bytes are charged to the budget until the reader and every record using it are
// done with it.
type chunk struct {
	buf    []byte
	refs   atomic.Int32
	b      *budget
	pooled bool // buf goes back to chunkPool when the last reference is released
}

// chunkPool holds read buffers of maxChunk bytes for reuse, when the sink does not use a
// record's data after its acknowledgement (DataReleaser): bulk reading then allocates no
// buffer per 64 KiB read.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, maxChunk); return &b }}

func newChunk(b *budget, size int, reuse bool) *chunk {
	c := &chunk{b: b}
	if reuse && size == maxChunk {
		c.buf, c.pooled = *chunkPool.Get().(*[]byte), true
	} else {
		c.buf = make([]byte, size)
	}
	c.refs.Store(1) // the reader's
	return c
}

func (c *chunk) retain() { c.refs.Add(1) }

func (c *chunk) release() {
	if c.refs.Add(-1) == 0 {
		c.b.release(int64(len(c.buf)), 0)
		if c.pooled {
			buf := c.buf
			c.buf = nil
			chunkPool.Put(&buf)
		}
	}
}
