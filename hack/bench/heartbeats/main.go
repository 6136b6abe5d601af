// Command heartbeats measures the monitor's cost of a fleet: it runs a
// monitor (telemetry/monitor, embedded NATS, bbolt store) in this process
// and 1,000 simulated boxes in a child process, each on its own NATS
// connection sending a heartbeat (as the uplink does: version, uptime,
// spool length, 16 counters) every 2 s, and reports the monitor process's
// CPU (getrusage) and memory (Go heap, RSS) idle and under the fleet.
// Dev-only.
//
//	go run ./hack/bench/heartbeats [-boxes 1000] [-every 2s] [-for 30s]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/openutm/utm/telemetry/alert"
	"github.com/openutm/utm/telemetry/monitor"
)

func main() {
	boxes := flag.Int("boxes", 1000, "simulated boxes")
	every := flag.Duration("every", 2*time.Second, "heartbeat period")
	dur := flag.Duration("for", 30*time.Second, "how long the fleet runs")
	idle := flag.Duration("idle", 10*time.Second, "how long the monitor runs alone first (baseline)")
	sim := flag.String("sim", "", "internal: run the fleet against this NATS URL")
	flag.Parse()
	if *sim != "" {
		fleet(*sim, *boxes, *every)
		return
	}
	if err := run(*boxes, *every, *dur, *idle); err != nil {
		fmt.Fprintln(os.Stderr, "heartbeats:", err)
		os.Exit(1)
	}
}

type sample struct {
	at       time.Time
	cpu      time.Duration // user + system
	heap     uint64        // HeapInuse
	rssKB    int
	gc       uint32
	hwmKB    int
	gorutine int
}

func take() sample {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return sample{at: time.Now(), cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), heap: ms.HeapInuse,
		rssKB: status("VmRSS"), hwmKB: status("VmHWM"), gc: ms.NumGC, gorutine: runtime.NumGoroutine()}
}

// status reads a kB field of /proc/self/status.
func status(field string) int {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.Atoi(strings.Fields(rest)[0])
			return n
		}
	}
	return 0
}

func run(boxes int, every, dur, idle time.Duration) error {
	dir, err := os.MkdirTemp("", "utm-heartbeats-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	m, err := monitor.Start(monitor.Config{DataDir: dir, NATSListen: "127.0.0.1:-1", HTTPListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	defer m.Close()
	s0 := take()
	time.Sleep(idle)
	s1 := take()

	self, _ := os.Executable()
	cmd := exec.Command(self, "-sim", m.NATSURL(), "-boxes", strconv.Itoa(boxes), "-every", every.String())
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	// Wait for the whole fleet to be online, then measure.
	deadline := time.Now().Add(60 * time.Second)
	for online(m) < boxes {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d boxes online after 60 s", online(m), boxes)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s2 := take()
	time.Sleep(dur)
	s3 := take()
	if n := online(m); n != boxes {
		return fmt.Errorf("%d of %d boxes online at the end", n, boxes)
	}
	pct := func(a, b sample) float64 { return 100 * float64(b.cpu-a.cpu) / float64(b.at.Sub(a.at)) }
	fmt.Printf("monitor process (embedded NATS + store + portal), %d CPUs\n", runtime.NumCPU())
	fmt.Printf("  idle %-6s       CPU %5.2f%% of a core   heap %6.1f MiB   RSS %6.1f MiB  goroutines %d\n",
		idle, pct(s0, s1), mib(s1.heap), float64(s1.rssKB)/1024, s1.gorutine)
	fmt.Printf("  %d boxes, heartbeat every %s, %s:\n", boxes, every, dur)
	fmt.Printf("                    CPU %5.2f%% of a core   heap %6.1f MiB   RSS %6.1f MiB (peak %.1f)  goroutines %d  GCs %d\n",
		pct(s2, s3), mib(s3.heap), float64(s3.rssKB)/1024, float64(s3.hwmKB)/1024, s3.gorutine, s3.gc-s2.gc)
	hbs := float64(boxes) * dur.Seconds() / every.Seconds()
	fmt.Printf("  per heartbeat     %.1f µs of CPU (%.0f heartbeats)\n", float64(s3.cpu-s2.cpu)/1e3/hbs, hbs)
	fmt.Printf("  per box           %.1f KiB of RSS over idle\n", float64(s3.rssKB-s1.rssKB)/float64(boxes))
	return nil
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func online(m *monitor.Monitor) int {
	n := 0
	for _, b := range m.Boxes() {
		if b.Online {
			n++
		}
	}
	return n
}

// fleet runs boxes NATS connections, each heartbeating every period with
// a random phase, until interrupted.
func fleet(url string, boxes int, every time.Duration) {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	var wg sync.WaitGroup
	done := make(chan struct{})
	start := time.Now()
	for i := range boxes {
		box := fmt.Sprintf("box-%04d", i)
		nc, err := nats.Connect(url, nats.Name("sim "+box), nats.MaxReconnects(-1))
		if err != nil {
			fmt.Fprintln(os.Stderr, "fleet:", err)
			os.Exit(1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer nc.Close()
			time.Sleep(time.Duration(i) * every / time.Duration(boxes)) // spread the phases
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				hb := alert.Heartbeat{BoxID: box, Version: "1.4.2", Signatures: "et-open-2019+rl-yara 2026-11-20",
					UptimeS: int64(time.Since(start).Seconds()), Time: time.Now().UTC(), Counters: map[string]uint64{}}
				for _, k := range []string{"packets", "drops", "bypassed", "alerts_1", "alerts_2", "alerts_3", "flows", "files",
					"files_scanned", "av_hits", "intel_hits", "uplink_published", "uplink_retries", "spool_evicted", "steer_steered", "reloads"} {
					hb.Counters[k] = uint64(i * 1000)
				}
				b, _ := json.Marshal(hb)
				nc.Publish(alert.HeartbeatSubject(box), b)
				select {
				case <-done:
					return
				case <-t.C:
				}
			}
		}()
	}
	<-stop
	close(done)
	wg.Wait()
}
