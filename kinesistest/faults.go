package kinesistest

import (
	"math/rand/v2"
	"sync"
	"time"
)

// FaultRule makes matching calls slow, fail, drop their connection, or throttle some
// PutRecords entries. A call takes the first rule (in order) that matches and fires.
type FaultRule struct {
	// Operation is the API operation the rule applies to, such as "PutRecords"; empty
	// matches every operation.
	Operation string
	// Rate is the chance, between 0 and 1, that a matching call fires the rule. Zero means
	// every matching call fires it.
	Rate float64
	// Times is how many calls the rule fires for before it stops; zero means no bound.
	Times int
	// Latency delays the call before it is served (or failed). A latency longer than the
	// caller's deadline makes the call hang until the caller gives up; the server stops
	// waiting when the connection goes away.
	Latency time.Duration
	// Error is the error code to answer with instead of serving the call, such as
	// CodeInternalFailure (HTTP 500), CodeServiceUnavailable (503) or
	// CodeProvisionedThroughputExceeded (400). Empty serves the call.
	Error string
	// Message is the error message; empty gives "injected fault".
	Message string
	// Reset drops the connection without an answer.
	Reset bool
	// ThrottleEntries is the chance, between 0 and 1, that each PutRecords entry fails
	// with ProvisionedThroughputExceededException even though its shard has capacity.
	ThrottleEntries float64
}

type faultSet struct {
	mu    sync.Mutex
	rules []FaultRule
	fired []int
	rng   *rand.Rand
}

func (f *faultSet) init(seed uint64, rules []FaultRule) {
	f.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	f.set(rules)
}

func (f *faultSet) set(rules []FaultRule) {
	f.mu.Lock()
	f.rules = append([]FaultRule(nil), rules...)
	f.fired = make([]int, len(rules))
	f.mu.Unlock()
}

// pick returns the rule that fires for a call of op, or nil.
func (f *faultSet) pick(op string) *FaultRule {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.rules {
		r := &f.rules[i]
		if r.Operation != "" && r.Operation != op {
			continue
		}
		if r.Times > 0 && f.fired[i] >= r.Times {
			continue
		}
		if r.Rate > 0 && f.rng.Float64() >= r.Rate {
			continue
		}
		f.fired[i]++
		rule := *r
		return &rule
	}
	return nil
}

// chance draws once with probability p.
func (f *faultSet) chance(p float64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rng.Float64() < p
}

// SetFaults replaces the server's fault rules; calls already past their fault check are not
// affected. SetFaults() with no rules removes them all.
func (s *Server) SetFaults(rules ...FaultRule) {
	s.faults.set(rules)
}
