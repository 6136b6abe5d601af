// Command demo runs the whole system in a network-namespace lab: an office
// client, the box running utmd inline, internet servers and the central
// monitor. It drives five cases through the box, prints each alert as the
// monitor receives it, and a summary. On a terminal it keeps the lab up
// until Ctrl-C; otherwise it tears down and exits 0 only if every case
// behaved as expected. `make demo` runs it. Dev-only.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/openutm/utm/hack/lab"
	"golang.org/x/sys/unix"
)

func main() {
	bin := flag.String("bin", "bin", "directory with utmd, monitor and labhost")
	dir := flag.String("dir", "out/demo", "directory for the lab's logs and state")
	flag.Parse()
	os.Exit(run(*bin, *dir))
}

func run(bin, dir string) int {
	abs, _ := filepath.Abs(bin)
	os.RemoveAll(dir)
	fmt.Println("Building the lab: office client ── box (utmd inline) ── internet, monitor on the host")
	l, err := lab.New(dir, abs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	defer l.Teardown()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Println("\nTearing the lab down...")
		l.Teardown()
		os.Exit(130)
	}()
	steps := []struct {
		what string
		fn   func() error
	}{
		{"central monitor (embedded NATS JetStream, portal)", l.StartMonitor},
		{"internet servers (web, DNS, C&C)", l.StartServers},
		{"the box: utmd inline on NFQUEUE", func() error { return l.StartUTMD() }},
	}
	for _, s := range steps {
		fmt.Printf("  starting %s\n", s.what)
		if err := s.fn(); err != nil {
			fmt.Fprintf(os.Stderr, "demo: %v\n  logs are in %s\n", err, dir)
			return 1
		}
	}
	w := lab.WatchAlerts(os.Stdout)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	res := l.RunCases(ctx, w, os.Stdout)
	cancel()
	time.Sleep(300 * time.Millisecond)
	w.Stop()
	ok := lab.PrintSummary(os.Stdout, res)
	leaks, err := l.ScanLeaks()
	switch {
	case err != nil:
		fmt.Printf("\nPrivacy check could not run: %v\n", err)
		ok = false
	case len(leaks) > 0:
		for _, lk := range leaks {
			fmt.Printf("\nPRIVACY LEAK: %q found in %s\n", lk.Canary, lk.Where)
		}
		ok = false
	default:
		fmt.Printf("\nPrivacy check: none of the %d payload canaries is in the alerts, logs, spool or monitor store.\n", len(lab.Forbidden()))
	}
	fmt.Printf("\nAlerts received by the monitor: %d. Portal: %s (from this machine; the first visit sets the admin password\n"+
		"through the one-time setup_url= that %s/monitor.log prints)\n", w.Count(), lab.PortalURL, dir)
	fmt.Printf("Logs and eve.json: %s\n", dir)
	if isTerminal(os.Stdin) {
		fmt.Println("The lab stays up for exploring, e.g.:")
		fmt.Printf("  ip netns exec %s %s/labhost fetch http://%s/eicar.com\n", lab.NSClient, abs, lab.WebDomain)
		fmt.Println("Press Ctrl-C to tear it down.")
		select {}
	}
	if !ok {
		fmt.Println("\nDEMO FAILED: a case did not behave as expected (see above and the logs).")
		return 1
	}
	fmt.Println("\nAll five cases behaved as expected.")
	return 0
}

// isTerminal reports whether f is a terminal (not merely a character
// device: /dev/null is one too).
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
