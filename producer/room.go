package producer

import (
	"context"
	"sync"
	"sync/atomic"
)

// room enforces MaxBufferedRecords and MaxBufferedBytes. The fast path is two atomic adds; a
// put that finds no room waits on a channel that every release closes (and replaces) while
// someone waits, so a release never has to know who is waiting.
type room struct {
	maxRecs, maxBytes int64

	recs, bytes atomic.Int64
	waiters     atomic.Int32

	mu sync.Mutex
	ch chan struct{}

	// drained gets a token whenever the buffer empties, for Close.
	drained chan struct{}
}

func newRoom(maxRecs, maxBytes int64) *room {
	return &room{maxRecs: maxRecs, maxBytes: maxBytes, ch: make(chan struct{}), drained: make(chan struct{}, 1)}
}

// tryAcquire takes room for one record of n bytes. A record larger than maxBytes fits only
// into an empty buffer, so that it can be sent at all.
func (r *room) tryAcquire(n int64) bool {
	if c := r.recs.Add(1); c > r.maxRecs {
		r.undo(1, 0)
		return false
	}
	if b := r.bytes.Add(n); b > r.maxBytes && b != n {
		r.undo(1, n)
		return false
	}
	return true
}

// undo rolls back a failed acquire. It wakes waiters too: the transient excess may have made
// another put fail and wait, and nothing else would wake it.
func (r *room) undo(recs, bytes int64) {
	r.release(recs, bytes)
}

// release returns room and wakes the waiters, if any.
func (r *room) release(recs, bytes int64) {
	r.bytes.Add(-bytes)
	if r.recs.Add(-recs) == 0 {
		select {
		case r.drained <- struct{}{}:
		default:
		}
	}
	if r.waiters.Load() > 0 {
		r.mu.Lock()
		close(r.ch)
		r.ch = make(chan struct{})
		r.mu.Unlock()
	}
}

// wait blocks until tryAcquire succeeds, ctx ends or closing is closed.
func (r *room) wait(ctx context.Context, n int64, closing <-chan struct{}) error {
	r.waiters.Add(1)
	defer r.waiters.Add(-1)
	for {
		// Take the channel before trying: a release after the try closes this very channel.
		r.mu.Lock()
		ch := r.ch
		r.mu.Unlock()
		if r.tryAcquire(n) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-closing:
			return ErrClosed
		}
	}
}

// epoch counts the records accepted between two Flush calls, so that Flush waits for the
// records put before it and not for those put while it waits.
type epoch struct {
	n       atomic.Int64
	retired atomic.Bool
	once    sync.Once
	done    chan struct{}
}

func newEpoch() *epoch { return &epoch{done: make(chan struct{})} }

func (e *epoch) sub(k int64) {
	if e.n.Add(-k) == 0 && e.retired.Load() {
		e.once.Do(func() { close(e.done) })
	}
}

func (e *epoch) retire() {
	e.retired.Store(true)
	if e.n.Load() == 0 {
		e.once.Do(func() { close(e.done) })
	}
}

func (e *epoch) isDone() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}
