package producer

import "sync"

// freeList keeps finished objects for reuse. Unlike a sync.Pool, which empties at every
// garbage collection, it keeps them until they are reused: the producer's kRecords and
// aggregators carry buffers of tens of kilobytes, and in a service that allocates much
// (and so collects often) a pool would have the producer allocate them all again after
// every collection, which makes for more collections. What it keeps is bounded by the most
// objects that were in use at once, which the buffer bounds (MaxBufferedRecords and
// MaxBufferedBytes).
type freeList[T any] struct {
	mu    sync.Mutex
	items []*T
	make  func() *T
}

func (f *freeList[T]) get() *T {
	f.mu.Lock()
	n := len(f.items)
	if n == 0 {
		f.mu.Unlock()
		return f.make()
	}
	x := f.items[n-1]
	f.items[n-1] = nil
	f.items = f.items[:n-1]
	f.mu.Unlock()
	return x
}

func (f *freeList[T]) put(x *T) {
	f.mu.Lock()
	f.items = append(f.items, x)
	f.mu.Unlock()
}
