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
	Queue    uint16 // NFQUEUE number
	QueueLen uint32 // packets the kernel may hold for the engine
	// BypassMark is the conntrack/packet mark bit of connections the
	// engine no longer inspects (0: the default 0x40000000).
	BypassMark uint32
	Arch       string // "any", "arm64", "amd64"
}

var profiles = map[string]Profile{
	"lab": {Name: "lab", LAN: "lan0", WAN: "wan0", Queue: 0, QueueLen: 4096, Arch: "any"},
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

// Mark returns the bypass mark bit, defaulted.
func (p Profile) Mark() uint32 {
	if p.BypassMark == 0 {
		return 0x40000000
	}
	return p.BypassMark
}
