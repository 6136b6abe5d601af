//go:build linux

package inline

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// FailOpen turns the cumulative count of packets that passed the box
// uninspected into rate-limited reports: at most one per MinInterval, each
// with the packets since the previous report (counts accumulate while a
// report waits). Counts below Threshold are packets merely in flight
// between a rule counter and a worker and are not reported. The first
// observation is the baseline (what passed before this process started is
// the restart alert's business). Observe is called from one goroutine;
// Reported and Alerts from any.
type FailOpen struct {
	MinInterval time.Duration // default 1 minute
	Threshold   uint64        // default 64

	started  bool
	reported uint64    // cumulative count covered by reports (or the baseline)
	last     time.Time // time of the last report
	total    atomic.Uint64
	alerts   atomic.Uint64
}

// Observe takes the cumulative uninspected count at now and returns the
// count to report, if a report is due.
func (f *FailOpen) Observe(now time.Time, cumulative uint64) (n uint64, due bool) {
	if f.MinInterval <= 0 {
		f.MinInterval = time.Minute
	}
	if f.Threshold == 0 {
		f.Threshold = 64
	}
	if !f.started || cumulative < f.reported { // first call, or counters reset (rules reinstalled)
		f.started = true
		f.reported = cumulative
		return 0, false
	}
	if cumulative < f.reported+f.Threshold {
		return 0, false
	}
	if !f.last.IsZero() && now.Sub(f.last) < f.MinInterval {
		return 0, false
	}
	n = cumulative - f.reported
	f.reported = cumulative
	f.last = now
	f.total.Add(n)
	f.alerts.Add(1)
	return n, true
}

// Reported returns the packets reported so far and the number of reports.
func (f *FailOpen) Reported() (packets, alerts uint64) { return f.total.Load(), f.alerts.Load() }

// Uninspected returns the cumulative count of packets that passed
// uninspected: with the kernel's count of packets its NFQUEUE rules
// steered (steered, known), the steered packets no worker saw (queue full,
// socket full, no listener); without it, the packets the kernel failed
// open because a socket buffer was full (nfq id gaps).
func (p *Pool) Uninspected(steered uint64, known bool) uint64 {
	var seen, gaps uint64
	for _, w := range p.workers {
		if w.q == nil {
			continue
		}
		c := w.q.Counters()
		seen += c["packets"]
		gaps += c["id_gaps"]
	}
	if !known {
		return gaps
	}
	// Packets queued but not yet given a verdict are in flight, not
	// bypassed.
	inFlight := p.queued()
	if steered > seen+inFlight {
		return steered - seen - inFlight
	}
	return 0
}

// procQueues is the kernel's table of this namespace's queues.
const procQueues = "/proc/net/netfilter/nfnetlink_queue"

// queued returns how many packets the kernel holds for the pool's queues,
// waiting for a verdict (queue_total in procQueues); 0 when unknown.
func (p *Pool) queued() uint64 {
	b, err := os.ReadFile(procQueues)
	if err != nil {
		return 0
	}
	return parseQueued(b, p.Queues())
}

// parseQueued sums queue_total (the third field) of the lines of queues.
func parseQueued(b []byte, queues []uint16) uint64 {
	var n uint64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		q, err1 := strconv.ParseUint(f[0], 10, 16)
		total, err2 := strconv.ParseUint(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		for _, want := range queues {
			if uint16(q) == want {
				n += total
			}
		}
	}
	return n
}

// RuleCounters sums the packet counters of the iptables and ip6tables
// NFQUEUE rules (tables raw, mangle and filter of this network namespace)
// that send to any of queues: with --queue-num N or --queue-balance A:B.
// It is how utmd -q, whose caller installed the rules, knows how many
// packets the kernel steered. ok is false when no such rule was found.
func RuleCounters(queues []uint16) (steered uint64, ok bool) {
	want := map[uint16]bool{}
	for _, q := range queues {
		want[q] = true
	}
	for _, bin := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"raw", "mangle", "filter"} {
			out, err := exec.Command(bin, "-w", "5", "-t", table, "-L", "-v", "-x", "-n").Output()
			if err != nil {
				continue
			}
			n, found := parseNFQueueRules(out, want)
			steered += n
			ok = ok || found
		}
	}
	return steered, ok
}

// parseNFQueueRules reads `iptables -L -v -x -n` output.
func parseNFQueueRules(out []byte, want map[uint16]bool) (steered uint64, found bool) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[2] != "NFQUEUE" {
			continue
		}
		pkts, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		lo, hi := -1, -1
		for i := 3; i+1 < len(f); i++ {
			switch f[i] {
			case "num":
				if n, err := strconv.Atoi(f[i+1]); err == nil {
					lo, hi = n, n
				}
			case "balance":
				a, b, _ := strings.Cut(f[i+1], ":")
				x, err1 := strconv.Atoi(a)
				y, err2 := strconv.Atoi(b)
				if err1 == nil && err2 == nil {
					lo, hi = x, y
				}
			}
		}
		if lo < 0 { // "NFQUEUE" with no options: queue 0
			lo, hi = 0, 0
		}
		for q := lo; q <= hi; q++ {
			if want[uint16(q)] {
				steered += pkts
				found = true
				break
			}
		}
	}
	return steered, found
}
