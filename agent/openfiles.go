package agent

import (
	"context"
	"sync"
	"time"
)

// openFiles keeps the number of readers (open files) within Config.MaxOpenFiles. Each open
// file's reader runs under a context of its own; to open one more at the cap, the reader of
// the file that grew least recently is cancelled and waited for. A cancelled reader stops as
// at shutdown: its state keeps the position after the last record it sent, and a partial
// line or a multi-line record being gathered stays unread, so the reader that opens the file
// again (when it grows, or at the next rescan) reads them whole. Filebeat's harvester_limit
// bounds its readers the same way, but makes new files wait instead.
type openFiles struct {
	mu   sync.Mutex
	max  int
	open map[*fileState]*openReader
}

type openReader struct {
	cancel  context.CancelFunc
	done    chan struct{}
	evicted bool
}

func (o *openFiles) setMax(n int) {
	o.mu.Lock()
	o.max = n
	o.mu.Unlock()
}

// admit makes room for st's reader, closing the least recently active readers while the cap
// is reached, and registers it. It waits for each evicted reader to stop, or for ctx to end.
func (o *openFiles) admit(ctx context.Context, st *fileState, r *openReader, evicted func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for len(o.open) >= o.max && ctx.Err() == nil {
		var victim *openReader
		var oldest int64
		for s, or := range o.open {
			if or.evicted {
				continue
			}
			if t := s.active.Load(); victim == nil || t < oldest {
				victim, oldest = or, t
			}
		}
		if victim == nil { // every open reader is already stopping
			victim = o.anyStopping()
		} else {
			victim.evicted = true
			victim.cancel()
			evicted()
		}
		o.mu.Unlock()
		select {
		case <-victim.done:
		case <-ctx.Done():
		case <-time.After(time.Second): // a reader slow to stop; look again
		}
		o.mu.Lock()
	}
	o.open[st] = r
}

func (o *openFiles) anyStopping() *openReader {
	for _, or := range o.open {
		return or
	}
	return nil
}

// release unregisters st's reader once it stopped.
func (o *openFiles) release(st *fileState, r *openReader) {
	o.mu.Lock()
	if o.open[st] == r {
		delete(o.open, st)
	}
	o.mu.Unlock()
	close(r.done)
}
