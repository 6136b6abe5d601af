//go:build linux

// Package steer installs and removes the netfilter rules that steer the
// office's forwarded traffic into the engine's NFQUEUE.
//
// The rules live in a chain of their own, UTM, jumped to from FORWARD, so
// installing is idempotent and removing never touches the administrator's
// rules. Both directions between LAN and WAN are queued with
// --queue-bypass: while no engine listens on the queue (it crashed, it is
// restarting, it is being updated) the kernel accepts the packets, so the
// office keeps its internet. The rules are left in place when the engine
// dies; only a clean stop removes them.
//
// Per-flow bypass: connections carrying the profile's bypass conntrack
// mark are accepted before NFQUEUE. The engine sets it without conntrack
// netlink glue: its Bypass verdict is NF_REPEAT with the packet mark, the
// packet runs the chain again and CONNMARK saves the mark (Suricata's
// repeat mode).
//
// IPv4 uses iptables, IPv6 ip6tables (Debian's default nf_tables backend
// or legacy; both provide the NFQUEUE target).
package steer

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"github.com/openutm/utm/board/profile"
)

// Chain is the chain the rules live in.
const Chain = "UTM"

// ErrIptables is returned (wrapped) when an iptables command fails.
var ErrIptables = errors.New("steer: iptables failed")

func run(bin string, args ...string) (string, error) {
	cmd := exec.Command(bin, append([]string{"-w", "5"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%w: %s %s: %v: %s", ErrIptables, bin, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// Rules returns the rules Install puts in the UTM chain, as iptables
// arguments.
func Rules(p profile.Profile) [][]string {
	m := fmt.Sprintf("0x%x", p.Mark())
	// One queue, or a range spread by the flow hash (symmetric: both
	// directions of a flow reach the same queue).
	q := []string{"--queue-num", strconv.Itoa(int(p.Queue))}
	if p.Queues > 1 {
		q = []string{"--queue-balance", fmt.Sprintf("%d:%d", p.Queue, p.Queue+p.Queues-1)}
		if p.CPUFanout {
			q = append(q, "--queue-cpu-fanout")
		}
	}
	q = append(q, "--queue-bypass")
	nfq := func(in, out string) []string {
		return append([]string{"-A", Chain, "-i", in, "-o", out, "-j", "NFQUEUE"}, q...)
	}
	return [][]string{
		// Connections the engine bypassed never reach the queue.
		{"-A", Chain, "-m", "connmark", "--mark", m + "/" + m, "-j", "ACCEPT"},
		// A Bypass verdict re-runs the packet (NF_REPEAT) with the mark:
		// save it on the connection and let the packet go.
		{"-A", Chain, "-m", "mark", "--mark", m + "/" + m, "-j", "CONNMARK", "--save-mark", "--nfmask", m, "--ctmask", m},
		{"-A", Chain, "-m", "mark", "--mark", m + "/" + m, "-j", "ACCEPT"},
		nfq(p.LAN, p.WAN),
		nfq(p.WAN, p.LAN),
	}
}

// Install creates (or refreshes) the UTM chain and its jump from FORWARD,
// for IPv4 and, where the kernel has it, IPv6.
func Install(p profile.Profile) error {
	if err := install("iptables", p); err != nil {
		return fmt.Errorf("%w (is the iptables package installed and are we root?)", err)
	}
	if err := install("ip6tables", p); err != nil {
		// IPv6 steering is best effort on kernels without ip6tables.
		return fmt.Errorf("%w (IPv6 traffic would not be inspected; install ip6tables or disable IPv6 forwarding)", err)
	}
	return nil
}

func install(bin string, p profile.Profile) error {
	if _, err := run(bin, "-S", Chain); err != nil {
		if _, err := run(bin, "-N", Chain); err != nil {
			return err
		}
	}
	if _, err := run(bin, "-F", Chain); err != nil {
		return err
	}
	for _, r := range Rules(p) {
		if _, err := run(bin, r...); err != nil {
			return err
		}
	}
	if _, err := run(bin, "-C", "FORWARD", "-j", Chain); err != nil {
		if _, err := run(bin, "-I", "FORWARD", "1", "-j", Chain); err != nil {
			return err
		}
	}
	return nil
}

// Remove deletes the jump and the chain. Missing rules are not an error.
func Remove(p profile.Profile) error {
	var errs []error
	for _, bin := range []string{"iptables", "ip6tables"} {
		for i := 0; i < 8; i++ {
			if _, err := run(bin, "-D", "FORWARD", "-j", Chain); err != nil {
				break
			}
		}
		if _, err := run(bin, "-S", Chain); err != nil {
			continue
		}
		if _, err := run(bin, "-F", Chain); err != nil {
			errs = append(errs, err)
		}
		if _, err := run(bin, "-X", Chain); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// List returns the current rules of the chain (iptables -S UTM), for
// diagnostics and tests.
func List(bin string) (string, error) { return run(bin, "-S", Chain) }

// Counters returns the packet counters of the steering rules, summed over
// IPv4 and IPv6: "steered" (packets that hit the NFQUEUE rules: queued to
// the engine or, with no engine listening, bypassed by the kernel) and
// "bypassed_connections" (packets of connections the engine bypassed).
// Compared with what the engine saw they tell how much passed uninspected.
func Counters(p profile.Profile) (map[string]uint64, error) {
	m := map[string]uint64{"steered": 0, "bypassed_connections": 0}
	for _, bin := range []string{"iptables", "ip6tables"} {
		out, err := run(bin, "-L", Chain, "-v", "-x", "-n")
		if err != nil {
			if bin == "ip6tables" {
				continue
			}
			return nil, err
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 3 {
				continue
			}
			n, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				continue // header lines
			}
			switch {
			case f[2] == "NFQUEUE":
				m["steered"] += n
			case f[2] == "ACCEPT" && strings.Contains(line, "connmark match"):
				m["bypassed_connections"] += n
			}
		}
	}
	return m, nil
}
