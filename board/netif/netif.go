//go:build linux

// Package netif brings the box's interfaces up through netlink and waits
// until the kernel reports them up.
package netif

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
)

// ErrMissing is returned (wrapped) when an interface does not exist.
var ErrMissing = errors.New("netif: interface missing")

// Up sets each named link up and waits (up to 5 s) until it is.
func Up(names ...string) error {
	for _, n := range names {
		l, err := netlink.LinkByName(n)
		if err != nil {
			return fmt.Errorf("%w: %s: %v (check the board profile's interface names with `ip link`)", ErrMissing, n, err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return fmt.Errorf("netif: set %s up: %w", n, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, n := range names {
		for {
			l, err := netlink.LinkByName(n)
			if err == nil && l.Attrs().Flags&net.FlagUp != 0 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("netif: %s did not come up within 5s (is the cable or peer connected?)", n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}
