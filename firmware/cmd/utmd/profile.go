package main

import (
	"fmt"
	"io"

	"github.com/openutm/utm/signatures/rules"
)

// printRuleProfile writes the n rules that cost the most verification time
// (utmd -r PCAP --profile-rules), one line each, most expensive first.
func printRuleProfile(w io.Writer, s *rules.Set, n int) {
	p := s.Profile()
	fmt.Fprintf(w, "rule profile: %d rules checked; top %d by time\n", len(p), min(n, len(p)))
	fmt.Fprintf(w, "%10s %10s %10s %12s  %s\n", "sid", "checks", "matches", "time", "msg")
	for _, rp := range p[:min(n, len(p))] {
		fmt.Fprintf(w, "%10d %10d %10d %12v  %s\n", rp.Rule.SID, rp.Checks, rp.Matches, rp.Ticks, rp.Rule.Msg)
	}
}
