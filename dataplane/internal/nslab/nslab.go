//go:build linux

// Package nslab builds a throwaway three-namespace network for kernel-facing
// tests: a client and a server host with a router namespace between them.
//
//	client 198.18.100.2/24 (c0) -- (r0) 198.18.100.1/24  router  198.18.101.1/24 (r1) -- (s0) 198.18.101.2/24 server
//
// Namespaces are named utmtest-<random>-{c,r,s}; only 198.18.0.0/15
// addresses are used; everything (namespaces, their iptables rules, veths)
// is removed by t.Cleanup, even when the test fails. Tests using it need
// root and skip with a clear message otherwise.
//
// It is test support only: nothing in the firmware imports it.
package nslab

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
)

// Addresses of the lab.
var (
	ClientAddr   = netip.MustParseAddr("198.18.100.2")
	RouterClient = netip.MustParseAddr("198.18.100.1")
	RouterServer = netip.MustParseAddr("198.18.101.1")
	ServerAddr   = netip.MustParseAddr("198.18.101.2")
)

// Lab is one client/router/server set of namespaces.
type Lab struct {
	Prefix                 string
	Client, Router, Server netns.NsHandle
}

// Names of the three namespaces.
func (l *Lab) ClientName() string { return l.Prefix + "-c" }
func (l *Lab) RouterName() string { return l.Prefix + "-r" }
func (l *Lab) ServerName() string { return l.Prefix + "-s" }

// RequireRoot skips the test unless it runs as root with the ip tool.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: it creates network namespaces (run: sudo go test ./dataplane/...)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip tool (iproute2) to create network namespaces")
	}
}

// Run runs a command and fails the test with its output when it fails.
func Run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
}

// New creates the namespaces, links and routes, with forwarding on in the
// router.
func New(t testing.TB) *Lab {
	t.Helper()
	RequireRoot(t)
	var rnd [4]byte
	rand.Read(rnd[:])
	l := &Lab{Prefix: "utmtest-" + hex.EncodeToString(rnd[:])}
	names := []string{l.ClientName(), l.RouterName(), l.ServerName()}
	for _, n := range names {
		Run(t, "ip", "netns", "add", n)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", n).CombinedOutput(); err != nil {
				t.Errorf("cleanup: ip netns del %s: %v: %s (remove it by hand)", n, err, out)
			}
		})
	}
	c, r, s := names[0], names[1], names[2]
	Run(t, "ip", "-n", c, "link", "add", "c0", "type", "veth", "peer", "name", "r0", "netns", r)
	Run(t, "ip", "-n", s, "link", "add", "s0", "type", "veth", "peer", "name", "r1", "netns", r)
	for _, cmd := range [][]string{
		{"-n", c, "addr", "add", "198.18.100.2/24", "dev", "c0"},
		{"-n", r, "addr", "add", "198.18.100.1/24", "dev", "r0"},
		{"-n", r, "addr", "add", "198.18.101.1/24", "dev", "r1"},
		{"-n", s, "addr", "add", "198.18.101.2/24", "dev", "s0"},
		{"-n", c, "link", "set", "lo", "up"},
		{"-n", r, "link", "set", "lo", "up"},
		{"-n", s, "link", "set", "lo", "up"},
		{"-n", c, "link", "set", "c0", "up"},
		{"-n", r, "link", "set", "r0", "up"},
		{"-n", r, "link", "set", "r1", "up"},
		{"-n", s, "link", "set", "s0", "up"},
		{"-n", c, "route", "add", "default", "via", "198.18.100.1"},
		{"-n", s, "route", "add", "default", "via", "198.18.101.1"},
	} {
		Run(t, "ip", cmd...)
	}
	Run(t, "ip", "netns", "exec", r, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	var err error
	if l.Client, err = netns.GetFromName(c); err != nil {
		t.Fatal(err)
	}
	if l.Router, err = netns.GetFromName(r); err != nil {
		t.Fatal(err)
	}
	if l.Server, err = netns.GetFromName(s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Client.Close(); l.Router.Close(); l.Server.Close() })
	return l
}

// Exec runs a command inside namespace name (ip netns exec).
func Exec(t testing.TB, name string, args ...string) {
	t.Helper()
	Run(t, "ip", append([]string{"netns", "exec", name}, args...)...)
}

// Do runs fn on an OS thread switched into ns and returns its error.
// Sockets fn creates stay in ns after Do returns, whichever goroutine
// uses them.
func Do(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("nslab: current netns: %w", err)
			return // the thread exits with the goroutine while locked
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("nslab: enter netns: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		} // else: the thread stays locked and dies with this goroutine
		errc <- ferr
	}()
	return <-errc
}
