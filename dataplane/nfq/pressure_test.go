//go:build linux

package nfq

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// psiFile is a stand-in /proc/pressure/cpu whose "some" total the test sets.
type psiFile string

func (f psiFile) set(t *testing.T, total int64) {
	t.Helper()
	s := fmt.Sprintf("some avg10=1.00 avg60=2.00 avg300=3.00 total=%d\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", total)
	if err := os.WriteFile(string(f), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCPUPressure: the CPU turns short only after the smoothed share of
// waiting time stays above cpuShortAbove, stays short in the band between
// the thresholds (hysteresis), turns back below cpuShortBelow, and is
// read at most once per cpuPressureEvery.
func TestCPUPressure(t *testing.T) {
	f := psiFile(filepath.Join(t.TempDir(), "cpu"))
	p := cpuPressure{path: string(f)}
	var now, total int64 = 1e9, 5e6
	f.set(t, total)
	if p.isShort(now) {
		t.Fatal("short at the first reading: nothing to compare it with yet")
	}
	// feed advances the clock one period with per-mille pressure pm.
	feed := func(pm int64) bool {
		now += cpuPressureEvery
		total += pm * cpuPressureEvery / 1e6 // us of waiting in the period
		f.set(t, total)
		return p.isShort(now)
	}
	for i := range 20 {
		if feed(450) {
			t.Fatalf("short at 45%% pressure (period %d, share %d)", i, p.share)
		}
	}
	if feed(950) {
		t.Fatalf("short after one 95%% period (share %d): one busy moment must not stop the spin", p.share)
	}
	turned := -1
	for i := range 20 {
		if feed(800) {
			turned = i
			break
		}
	}
	if turned < 0 {
		t.Fatalf("not short after 20 periods at 80%% (share %d)", p.share)
	}
	for i := range 20 {
		if !feed(600) {
			t.Fatalf("no longer short at 60%%, between the thresholds (period %d, share %d)", i, p.share)
		}
	}
	back := false
	for range 20 {
		if !feed(300) {
			back = true
			break
		}
	}
	if !back {
		t.Fatalf("still short after 20 periods at 30%% (share %d)", p.share)
	}
	for i := range 20 {
		if feed(600) {
			t.Fatalf("short at 60%% coming from below (period %d, share %d)", i, p.share)
		}
	}

	// Within a period the file is not read again.
	f.set(t, total+cpuPressureEvery/1e3) // 100% since the last reading
	for range 100 {
		if p.isShort(now + cpuPressureEvery/2) {
			t.Fatal("read the file again within a period")
		}
	}
	// A reading after a long silence stands for itself.
	now += 10 * cpuPressureFresh
	total += 10 * cpuPressureFresh / 1e3 * 9 / 10
	f.set(t, total)
	if !p.isShort(now) {
		t.Fatalf("not short after 1 s at 90%% (share %d)", p.share)
	}

	// No PSI: never short, and the spin credit alone decides.
	none := cpuPressure{path: filepath.Join(t.TempDir(), "missing")}
	if none.isShort(now) || !none.none || none.isShort(now+time.Second.Nanoseconds()) {
		t.Fatal("without a pressure file the CPU must never be short")
	}
	// An unreadable file (a transient failure) keeps the last state and
	// is tried again the next period; only a missing file turns PSI off.
	f.set(t, total)
	was := p.short
	os.WriteFile(string(f), []byte("garbage\n"), 0o644)
	now += cpuPressureEvery
	if p.isShort(now) != was || p.none {
		t.Fatalf("after an unreadable reading: short %v (was %v), none %v; want unchanged, PSI still on", p.short, was, p.none)
	}
	for _, bad := range []string{"", "full total=5\n", "some avg10=0.00\n", "some total=\n", "some total=99999999999999999999999\n"} {
		if _, ok := someTotal([]byte(bad)); ok {
			t.Errorf("someTotal(%q) ok, want a refusal", bad)
		}
	}
	if v, ok := someTotal([]byte("some avg10=0.13 avg60=0.05 avg300=0.00 total=2349817\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n")); !ok || v != 2349817 {
		t.Errorf("someTotal: %d %v, want 2349817", v, ok)
	}
	// This kernel's own file, where there is one, parses.
	if b, err := os.ReadFile("/proc/pressure/cpu"); err == nil {
		if _, ok := someTotal(b); !ok {
			t.Errorf("cannot parse this kernel's /proc/pressure/cpu: %q", b)
		}
	}
}

// TestSpinWhileCPUShort: with spin credit, a reader on an empty socket
// spins for Spin when the CPU is not short, and sleeps at once, counting
// spin_cpu_short, when it is.
func TestSpinWhileCPUShort(t *testing.T) {
	rc, _, _ := socketPair(t)
	f := psiFile(filepath.Join(t.TempDir(), "cpu"))
	q := newQueue(Config{Spin: 20 * time.Millisecond}, nil, rc)
	q.cpu.path = string(f)
	read := func() (took time.Duration) {
		q.spinCredit = spinCreditMax
		start := time.Now()
		rc.Read(func(fd uintptr) bool {
			if q.readFD(fd) {
				t.Fatal("read a datagram from an empty socket")
			}
			return true // do not wait for one
		})
		q.slept = 0
		return time.Since(start)
	}

	var total int64 = 1e6
	f.set(t, total)
	if d := read(); d < 20*time.Millisecond || q.spinCredit != spinCreditMax-1 || q.cpuShort.Load() != 0 {
		t.Fatalf("CPU not short: slept after %v, spin credit %d, spin_cpu_short %d; want a 20 ms spin in vain first", d, q.spinCredit, q.cpuShort.Load())
	}
	// A second of 90% pressure since the last reading.
	q.cpu.at -= time.Second.Nanoseconds()
	f.set(t, total+900e3)
	if d := read(); q.spinCredit != spinCreditMax || q.cpuShort.Load() != 1 {
		t.Fatalf("CPU short: slept after %v, spin credit %d (a spin in vain lowers it), spin_cpu_short %d; want no spin, counted",
			d, q.spinCredit, q.cpuShort.Load())
	}
	if q.Counters()["spin_cpu_short"] != 1 {
		t.Errorf("counters: %v", q.Counters())
	}
}
