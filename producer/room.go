package producer

import (
	"context"
	"sync"
	"sync/atomic"
)

// room enforces MaxBufferedRecords and MaxBufferedBytes.
//
// A put that finds room takes it with two compare-and-swaps, which never overshoot the
// bounds, so no other put fails because of a count that is about to be undone. A put that
// finds none joins a FIFO queue and sleeps on its own channel; release grants freed room to
// the queue's head itself, so a woken put owns its room and never has to try again against
// newcomers, and a put that keeps failing cannot keep waking itself. Waiters and their
// channels are recycled, so waiting allocates nothing in the steady state.
type room struct {
	maxRecs, maxBytes int64

	recs, bytes atomic.Int64
	// waiting counts the puts inside the slow path. It is raised before their first try
	// under mu, and release reads it after returning room, so that a release either lets
	// that try succeed or sees the waiter and grants it: no wake-up is lost. While it is
	// non-zero the fast path stands aside, so newcomers do not overtake the queue.
	waiting atomic.Int32

	mu         sync.Mutex
	head, tail *waiter
	free       *waiter // recycled waiters

	// drained gets a token whenever the buffer empties, for Close.
	drained chan struct{}
}

// waiter is one put queued for room. Its fields other than ready are guarded by room.mu.
type waiter struct {
	n          int64
	granted    bool
	ready      chan struct{} // capacity 1; the token is the grant
	prev, next *waiter
}

func newRoom(maxRecs, maxBytes int64) *room {
	return &room{maxRecs: maxRecs, maxBytes: maxBytes, drained: make(chan struct{}, 1)}
}

// take reserves room for one record of n bytes. A record larger than maxBytes fits only
// into an empty buffer, so that it can be sent at all. rolledBack reports that the record
// count was raised and lowered again, which may have made a concurrent try fail.
func (r *room) take(n int64) (ok, rolledBack bool) {
	for {
		c := r.recs.Load()
		if c >= r.maxRecs {
			return false, false
		}
		if r.recs.CompareAndSwap(c, c+1) {
			break
		}
	}
	for {
		b := r.bytes.Load()
		if b != 0 && b+n > r.maxBytes {
			r.sub(1, 0)
			return false, true
		}
		if r.bytes.CompareAndSwap(b, b+n) {
			return true, false
		}
	}
}

// tryAcquire takes room for one record of n bytes if there is room and nobody is queued
// for it.
func (r *room) tryAcquire(n int64) bool {
	if r.waiting.Load() == 0 {
		ok, rolledBack := r.take(n)
		if ok {
			return true
		}
		if rolledBack && r.waiting.Load() > 0 {
			// A queued put may have judged the buffer by the count just undone.
			r.mu.Lock()
			r.grantLocked()
			r.mu.Unlock()
		}
		return false
	}
	r.mu.Lock()
	ok := false
	if r.head == nil {
		ok, _ = r.take(n) // under mu a roll-back needs no grant: see grantLocked
	}
	r.mu.Unlock()
	return ok
}

// wait blocks until it holds room for one record of n bytes, ctx ends or closing is closed.
func (r *room) wait(ctx context.Context, n int64, closing <-chan struct{}) error {
	r.waiting.Add(1)
	defer r.waiting.Add(-1)
	r.mu.Lock()
	if r.head == nil {
		if ok, _ := r.take(n); ok {
			r.mu.Unlock()
			return nil
		}
	}
	w := r.free
	if w != nil {
		r.free = w.next
	} else {
		w = &waiter{ready: make(chan struct{}, 1)}
	}
	*w = waiter{n: n, ready: w.ready, prev: r.tail}
	if r.tail != nil {
		r.tail.next = w
	} else {
		r.head = w
	}
	r.tail = w
	r.mu.Unlock()

	var err error
	select {
	case <-w.ready:
	case <-ctx.Done():
		err = ctx.Err()
	case <-closing:
		err = ErrClosed
	}

	r.mu.Lock()
	if err != nil {
		if w.granted {
			// Granted while giving up: the room is ours, so the put goes ahead.
			<-w.ready
			err = nil
		} else {
			wasHead := r.head == w
			r.unlinkLocked(w)
			if wasHead {
				r.grantLocked() // the next in line may need less than this one did
			}
		}
	}
	*w = waiter{ready: w.ready, next: r.free}
	r.free = w
	r.mu.Unlock()
	return err
}

// grantLocked hands room to queued puts, in order, while the head fits. r.mu is held. A try
// made here that rolls back needs no grant of its own: other queued puts are tried only
// under r.mu, after it, and a put that failed on the fast path meanwhile tries again under
// r.mu before it queues.
func (r *room) grantLocked() {
	for w := r.head; w != nil; w = r.head {
		if ok, _ := r.take(w.n); !ok {
			return
		}
		r.unlinkLocked(w)
		w.granted = true
		w.ready <- struct{}{} // capacity 1 and empty: never blocks
	}
}

func (r *room) unlinkLocked(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		r.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		r.tail = w.prev
	}
	w.prev, w.next = nil, nil
}

// sub returns room without granting it.
func (r *room) sub(recs, bytes int64) {
	r.bytes.Add(-bytes)
	if r.recs.Add(-recs) == 0 {
		select {
		case r.drained <- struct{}{}:
		default:
		}
	}
}

// release returns room and grants it to queued puts, if any.
func (r *room) release(recs, bytes int64) {
	r.sub(recs, bytes)
	if r.waiting.Load() > 0 {
		r.mu.Lock()
		r.grantLocked()
		r.mu.Unlock()
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
