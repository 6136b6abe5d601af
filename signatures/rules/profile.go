package rules

import (
	"sort"
	"sync/atomic"
	"time"
)

// RuleProfile is what one rule cost since profiling was enabled.
type RuleProfile struct {
	Rule    *Rule
	Checks  uint64        // times the rule was verified (its fast pattern hit, or it has none)
	Matches uint64        // times it matched
	Ticks   time.Duration // monotonic time spent verifying it
}

type ruleCounters struct {
	checks, matches, ns atomic.Uint64
}

type profile struct {
	c []ruleCounters // by rule index in the Set
}

// EnableProfiling makes Match count, per rule, the verifications, the
// matches and the time spent verifying (two monotonic clock readings per
// verification, so a matching pass costs more while it is on). Safe to
// call while other goroutines Match; a second call keeps the counts.
func (s *Set) EnableProfiling() {
	s.pf.prof.CompareAndSwap(nil, &profile{c: make([]ruleCounters, len(s.rules))})
}

// Profile returns the rules verified at least once since EnableProfiling,
// the most expensive first (by Ticks, then Checks); nil when profiling is
// off.
func (s *Set) Profile() []RuleProfile {
	p := s.pf.prof.Load()
	if p == nil {
		return nil
	}
	var out []RuleProfile
	for i := range p.c {
		c := &p.c[i]
		if n := c.checks.Load(); n > 0 {
			out = append(out, RuleProfile{Rule: s.rules[i], Checks: n, Matches: c.matches.Load(), Ticks: time.Duration(c.ns.Load())})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Ticks != out[j].Ticks {
			return out[i].Ticks > out[j].Ticks
		}
		return out[i].Checks > out[j].Checks
	})
	return out
}

// verify checks r against in and counts it under rule index id.
func (p *profile) verify(id int32, r *Rule, in *Input) bool {
	t0 := time.Now()
	ok := r.quick(in) && r.full(in)
	c := &p.c[id]
	c.ns.Add(uint64(time.Since(t0)))
	c.checks.Add(1)
	if ok {
		c.matches.Add(1)
	}
	return ok
}
