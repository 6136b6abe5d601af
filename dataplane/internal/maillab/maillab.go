//go:build linux

// Package maillab runs real mail software in network namespaces for tests:
// a receiving SMTP server (github.com/emersion/go-smtp, with PIPELINING,
// CHUNKING and STARTTLS), Debian's swaks as the sending client, Debian's
// dovecot serving POP3 and IMAP from a maildir in the test's temp dir, and
// python3's poplib and imaplib as POP3 and IMAP clients. Relay puts an
// in-process TCP relay in front of a server that tees both directions into
// a dataplane/mail Parser and can cut the connection where the inline
// engine would.
//
// Every helper takes the name of a namespace the caller created (NewNS makes
// a throwaway one named utmm-<random> with 198.18.30.0/24 on its loopback)
// and cleans up with t.Cleanup, even when the test fails. Tests need root;
// helpers skip with a clear message when a Debian package is missing and
// apt-get cannot install it (Debian packages: swaks, dovecot-imapd,
// dovecot-pop3d, python3).
//
// It is test support only: nothing in the firmware imports it.
package maillab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openutm/utm/dataplane/internal/nslab"
	"github.com/vishvananda/netns"
)

// Addresses NewNS puts on the namespace's loopback.
const (
	ClientIP = "198.18.30.1"
	ServerIP = "198.18.30.2"
	RelayIP  = "198.18.30.3"
)

// NewNS creates a throwaway namespace utmm-<random> with ClientIP,
// ServerIP and RelayIP on its loopback, removed at cleanup.
func NewNS(t testing.TB) string {
	t.Helper()
	nslab.RequireRoot(t)
	var rnd [4]byte
	rand.Read(rnd[:])
	ns := "utmm-" + hex.EncodeToString(rnd[:])
	nslab.Run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("cleanup: ip netns del %s: %v: %s (remove it by hand)", ns, err, out)
		}
	})
	nslab.Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	for _, a := range []string{ClientIP, ServerIP, RelayIP} {
		nslab.Run(t, "ip", "-n", ns, "addr", "add", a+"/24", "dev", "lo")
	}
	return ns
}

var aptMu sync.Mutex

// RequireTool skips the test unless the program exists, installing the
// Debian package first if it is missing.
func RequireTool(t testing.TB, program, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(program); err == nil {
		return
	}
	aptMu.Lock()
	defer aptMu.Unlock()
	if _, err := exec.LookPath(program); err == nil {
		return
	}
	cmd := exec.Command("apt-get", "install", "-y", "--no-install-recommends", pkg)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("needs %s (Debian package %s) and apt-get install failed: %v: %s", program, pkg, err, lastLines(out, 3))
	}
	if _, err := exec.LookPath(program); err != nil {
		t.Skipf("needs %s: installed Debian package %s but it is still not in PATH", program, pkg)
	}
}

func lastLines(b []byte, n int) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return bytes.Join(lines, []byte(" | "))
}

// handle opens namespace ns; the handle is closed at cleanup.
func handle(t testing.TB, ns string) netns.NsHandle {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatalf("open namespace %s: %v", ns, err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// Listen opens a TCP listener on addr inside namespace ns.
func Listen(t testing.TB, ns, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	err := nslab.Do(handle(t, ns), func() (err error) {
		l, err = net.Listen("tcp4", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// Dial connects to addr from inside namespace ns.
func Dial(ns netns.NsHandle, addr string) (net.Conn, error) {
	var c net.Conn
	err := nslab.Do(ns, func() (err error) {
		c, err = net.DialTimeout("tcp4", addr, 5*time.Second)
		return err
	})
	return c, err
}

// waitListen polls until something accepts connections on addr in ns.
func waitListen(t testing.TB, ns, addr string, dead <-chan struct{}, what func() string) {
	t.Helper()
	h := handle(t, ns)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := Dial(h, addr)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-dead:
			t.Fatalf("%s exited before listening on %s: %s", "server", addr, what())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s in %s after 15s: %v; %s", addr, ns, err, what())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// inNS builds a command run inside namespace ns.
func inNS(ctx context.Context, ns string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
}

// CRLF turns bare LF line ends into CRLF.
func CRLF(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
}

func hostPort(addr string) (string, string) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		panic(fmt.Sprintf("maillab: address %q: %v", addr, err))
	}
	return h, p
}

func trimOut(b []byte) string { return strings.TrimSpace(string(b)) }
