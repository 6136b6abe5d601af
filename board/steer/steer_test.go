//go:build linux

package steer

import (
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/openutm/utm/board/profile"
	"github.com/vishvananda/netns"
)

// inNetns runs fn on a thread moved into a new, throwaway network
// namespace; commands fn starts inherit it.
func inNetns(t *testing.T, fn func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // the thread dies with the goroutine: never returned to the pool in the new netns
		orig, err := netns.Get()
		if err != nil {
			t.Error(err)
			return
		}
		defer orig.Close()
		ns, err := netns.New()
		if err != nil {
			t.Error(err)
			return
		}
		defer ns.Close()
		fn()
	}()
	<-done
}

func TestInstallRemove(t *testing.T) {
	lab, _ := profile.Lookup("lab")
	one := lab
	one.Queue, one.Queues = 3, 1
	fanout := lab
	fanout.Queue, fanout.Queues, fanout.CPUFanout = 4, 4, true
	for _, tc := range []struct {
		name string
		p    profile.Profile
		want string // the NFQUEUE target as iptables -S prints it
	}{
		{"lab", lab, "-j NFQUEUE --queue-balance 0:1 --queue-bypass"},
		{"one queue", one, "-j NFQUEUE --queue-num 3 --queue-bypass"},
		{"cpu fanout", fanout, "-j NFQUEUE --queue-balance 4:7 --queue-bypass --queue-cpu-fanout"},
	} {
		t.Run(tc.name, func(t *testing.T) { testInstallRemove(t, tc.p, tc.want) })
	}
}

func testInstallRemove(t *testing.T, p profile.Profile, target string) {
	inNetns(t, func() {
		for i := 0; i < 2; i++ { // twice: idempotent
			if err := Install(p); err != nil {
				t.Error(err)
				return
			}
		}
		out, err := List("iptables")
		if err != nil {
			t.Error(err)
			return
		}
		for _, want := range []string{"-i lan0 -o wan0 " + target, "-i wan0 -o lan0 " + target} {
			if strings.Count(out, want) != 1 {
				t.Errorf("rule %q not exactly once in:\n%s", want, out)
			}
		}
		fwd, _ := run("iptables", "-S", "FORWARD")
		if strings.Count(fwd, "-j UTM") != 1 {
			t.Errorf("jump to UTM not exactly once:\n%s", fwd)
		}
		if err := Remove(p); err != nil {
			t.Error(err)
		}
		if _, err := List("iptables"); err == nil {
			t.Error("chain UTM still exists after Remove")
		}
		if err := Remove(p); err != nil {
			t.Errorf("second Remove: %v", err)
		}
	})
}
