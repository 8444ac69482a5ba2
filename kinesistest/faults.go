package kinesistest

import (
	"math/rand/v2"
	"sync"
	"time"
)

// FaultRule makes matching calls slow, fail, drop their connection, or fail some PutRecords
// entries. A call takes the first rule (in order) that matches and fires.
type FaultRule struct {
	// Operation is the API operation the rule applies to, such as "PutRecords"; empty
	// matches every operation.
	Operation string
	// Rate is the chance, between 0 and 1, that a matching call fires the rule. Zero means
	// every matching call fires it.
	Rate float64
	// Times is how many calls the rule fires for before it stops; zero means no bound.
	Times int
	// Duration is how long, on the server's clock, the rule applies after it was set (by
	// Options.Faults at start, SetFaults or AddFault); zero means until it is replaced or
	// removed.
	Duration time.Duration
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
	// Reset drops the connection without an answer and without serving the call.
	Reset bool
	// ResetAfterServe serves the call (records are stored, state changes) and then drops
	// the connection instead of answering: the call took effect and the client cannot
	// know it, as when a connection breaks while the answer is on its way.
	ResetAfterServe bool
	// ThrottleEntries is the chance, between 0 and 1, that each PutRecords entry fails
	// (with EntryError) even though its shard has capacity.
	ThrottleEntries float64
	// Entries selects the PutRecords entries the rule may fail; nil selects every entry.
	// With Entries set and ThrottleEntries zero, every selected entry fails. It is called
	// once per entry in request order, with the server's lock held: it must not call the
	// server.
	Entries func(Entry) bool
	// EntryError is the error code of the entries the rule fails:
	// CodeProvisionedThroughputExceeded (the default) or CodeInternalFailure, the two
	// codes PutRecords reports per entry.
	EntryError string
}

// Entry is what a FaultRule's Entries function is shown of a PutRecords entry.
type Entry struct {
	PartitionKey    string
	ExplicitHashKey string
	// ShardID is the shard the entry's hash key routes to.
	ShardID string
}

// failsEntries reports whether the rule fails PutRecords entries rather than whole calls.
func (r *FaultRule) failsEntries() bool { return r.ThrottleEntries > 0 || r.Entries != nil }

// entryError is the code and message an entry the rule fails gets.
func (r *FaultRule) entryError() string {
	if r.EntryError == "" {
		return CodeProvisionedThroughputExceeded
	}
	return r.EntryError
}

type faultSet struct {
	mu     sync.Mutex
	rules  []activeFault
	nextID int
	rng    *rand.Rand
	counts map[string]int
}

type activeFault struct {
	FaultRule
	id      int
	expires time.Time // zero: no end
	fired   int
}

func (f *faultSet) init(seed uint64, rules []FaultRule, now time.Time) {
	f.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	f.counts = map[string]int{}
	f.set(rules, now)
}

func (f *faultSet) set(rules []FaultRule, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = f.rules[:0]
	for _, r := range rules {
		f.addLocked(r, now)
	}
}

func (f *faultSet) addLocked(r FaultRule, now time.Time) int {
	f.nextID++
	a := activeFault{FaultRule: r, id: f.nextID}
	if r.Duration > 0 {
		a.expires = now.Add(r.Duration)
	}
	f.rules = append(f.rules, a)
	return a.id
}

func (f *faultSet) remove(id int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.rules {
		if f.rules[i].id == id {
			f.rules = append(f.rules[:i], f.rules[i+1:]...)
			return
		}
	}
}

// pick returns the rule that fires for a call of op at now, or nil.
func (f *faultSet) pick(op string, now time.Time) *FaultRule {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.rules {
		r := &f.rules[i]
		if r.Operation != "" && r.Operation != op {
			continue
		}
		if !r.expires.IsZero() && !now.Before(r.expires) {
			continue
		}
		if r.Times > 0 && r.fired >= r.Times {
			continue
		}
		if r.Rate > 0 && f.rng.Float64() >= r.Rate {
			continue
		}
		r.fired++
		rule := r.FaultRule
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

// failsEntry reports whether rule fails entry e.
func (f *faultSet) failsEntry(rule *FaultRule, e Entry) bool {
	if rule.Entries != nil && !rule.Entries(e) {
		return false
	}
	return rule.ThrottleEntries == 0 || f.chance(rule.ThrottleEntries)
}

// count records that a fault acted on a call of op.
func (f *faultSet) count(op string) {
	f.mu.Lock()
	f.counts[op]++
	f.mu.Unlock()
}

// SetFaults replaces the server's fault rules; calls already past their fault check are not
// affected. SetFaults() with no rules removes them all.
func (s *Server) SetFaults(rules ...FaultRule) {
	s.faults.set(rules, s.clock.Now())
}

// AddFault adds a rule after the server's current ones and returns a function that removes
// it again (a no-op once SetFaults has replaced the rules).
func (s *Server) AddFault(rule FaultRule) (remove func()) {
	s.faults.mu.Lock()
	id := s.faults.addLocked(rule, s.clock.Now())
	s.faults.mu.Unlock()
	return func() { s.faults.remove(id) }
}

// FaultCount returns how many calls of op a fault rule acted on so far: calls delayed,
// failed or reset, and PutRecords calls of which at least one entry was failed.
func (s *Server) FaultCount(op string) int {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return s.faults.counts[op]
}

// faultEntry is what a rule's Entries function sees of e, routed to shard.
func faultEntry(e *putEntry, shard string) Entry {
	out := Entry{ShardID: shard}
	if e.PartitionKey != nil {
		out.PartitionKey = *e.PartitionKey
	}
	if e.ExplicitHashKey != nil {
		out.ExplicitHashKey = *e.ExplicitHashKey
	}
	return out
}
