// Package profile describes the boards the firmware runs on: which
// interface faces the office (LAN) and which the internet (WAN), the
// NFQUEUE number and the queue's length. Profiles are data; the daemon
// looks one up by name from its configuration.
//
// The "lab" profile is the network-namespace lab of `make demo`. Real
// boards (ARM64 and x86-64 appliances) are added here as they are
// supported, with their interface names, queue sizes sized to their memory
// and, later, their watchdog and LED devices.
package profile

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrUnknown is returned (wrapped) by Lookup for a name with no profile.
var ErrUnknown = errors.New("profile: unknown board")

// Profile is one board.
type Profile struct {
	Name     string
	LAN, WAN string // interface names
	Queue    uint16 // first NFQUEUE number
	// Queues is how many queues (Queue .. Queue+Queues-1), one engine
	// worker each; 0 means 1. Size it to the board's cores. The steering
	// rules spread flows over them with --queue-balance, whose hash is
	// symmetric over the address pair: both directions of a flow reach
	// the same worker, so flow state needs no lock.
	Queues uint16
	// CPUFanout adds --queue-cpu-fanout: the queue is chosen by the CPU
	// that received the packet instead of the flow hash. It saves a
	// cross-CPU hop but pins flows to workers only when the NICs steer
	// both directions of a flow to the same CPU (symmetric RSS); leave it
	// off unless the board's NICs do that.
	CPUFanout bool
	QueueLen  uint32 // packets the kernel may hold for each queue
	// RcvBuf is each queue's netlink socket receive buffer in bytes (0:
	// the nfq default, 8 MiB). It must hold a burst of QueueLen packets;
	// a full buffer fails packets open (counted as uninspected).
	RcvBuf int
	// BypassMark is the conntrack/packet mark bit of connections the
	// engine no longer inspects (0: the default 0x40000000).
	BypassMark uint32
	Arch       string // "any", "arm64", "amd64"
}

var profiles = map[string]Profile{
	// The lab runs two queues so the demo and its tests exercise the
	// fan-out the real boards use.
	"lab": {Name: "lab", LAN: "lan0", WAN: "wan0", Queue: 0, Queues: 2, QueueLen: 4096, RcvBuf: 8 << 20, Arch: "any"},
}

// Lookup returns the profile called name.
func Lookup(name string) (Profile, error) {
	p, ok := profiles[name]
	if !ok {
		return Profile{}, fmt.Errorf("%w %q (known: %s)", ErrUnknown, name, strings.Join(Names(), ", "))
	}
	return p, nil
}

// Names lists the known profiles.
func Names() []string {
	var n []string
	for k := range profiles {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// QueueNums returns the board's queue numbers.
func (p Profile) QueueNums() []uint16 {
	n := max(p.Queues, 1)
	q := make([]uint16, n)
	for i := range q {
		q[i] = p.Queue + uint16(i)
	}
	return q
}

// Mark returns the bypass mark bit, defaulted.
func (p Profile) Mark() uint32 {
	if p.BypassMark == 0 {
		return 0x40000000
	}
	return p.BypassMark
}
