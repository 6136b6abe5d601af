package beacon

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

var (
	t0   = time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	host = netip.MustParseAddr("198.18.0.10")
)

// gen returns connection start offsets over span with intervals from next.
func gen(span time.Duration, next func() time.Duration) []time.Duration {
	var out []time.Duration
	for t := time.Duration(0); t < span; t += next() {
		out = append(out, t)
	}
	return out
}

// run feeds the starts to d and returns every Beacon.
func run(d *Detector, h netip.Addr, dst string, starts []time.Duration, size func() uint64) []Beacon {
	var got []Beacon
	for _, s := range starts {
		if b, ok := d.Observe(t0.Add(s), h, dst, size()); ok {
			got = append(got, b)
		}
	}
	return got
}

func TestDetectsPeriodicCallHome(t *testing.T) {
	const period = 60 * time.Second
	for _, tc := range []struct {
		name   string
		jitter float64 // interval = period·(1 + U(-jitter, +jitter))
		down   bool    // Cobalt Strike style: period·(1 - U(0, jitter))
	}{
		{"jitter 0%", 0, false},
		{"jitter 5%", 0.05, false},
		{"jitter 20%", 0.20, false},
		{"jitter 20% downwards only", 0.20, true},
		{"jitter 40%", 0.40, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(tc.jitter*100)))
			starts := gen(6*time.Hour, func() time.Duration {
				f := 1 + tc.jitter*(2*r.Float64()-1)
				if tc.down {
					f = 1 - tc.jitter*r.Float64()
				}
				return time.Duration(float64(period) * f)
			})
			d := New(Config{})
			got := run(d, host, "c2.example.net", starts, func() uint64 { return 310 + uint64(r.IntN(20)) })
			if len(got) != 1 {
				t.Fatalf("%d beacons over 6 h, want exactly 1 (once per pair per window)", len(got))
			}
			b := got[0]
			want := period
			if tc.down {
				want = time.Duration(float64(period) * (1 - tc.jitter/2))
			}
			if d := b.Interval - want; d < -3*time.Second || d > 3*time.Second {
				t.Errorf("Interval %v, want %v ± 3 s", b.Interval, want)
			}
			// MAD of a uniform interval of half-width w is w/2
			wantJ := time.Duration(float64(period) * tc.jitter / 2)
			if tc.down {
				wantJ /= 2
			}
			if d := b.Jitter - wantJ; d < -2*time.Second || d > 2*time.Second {
				t.Errorf("Jitter %v, want %v ± 2 s", b.Jitter, wantJ)
			}
			if b.Host != host || b.Dst != "c2.example.net" || b.Count < DefaultMinConns || b.Score < DefaultThreshold {
				t.Errorf("beacon %+v: wrong host/dst, too few samples or score under threshold", b)
			}
			if !b.First.Before(b.Last) || b.Last.Sub(b.First) > 6*time.Hour {
				t.Errorf("First %v Last %v", b.First, b.Last)
			}
			t.Logf("detected after %d conns (%v): score %.3f ts %.3f size %.3f interval %v jitter %v",
				b.Count, b.Last.Sub(t0).Round(time.Second), b.Score, b.TSScore, b.SizeScore, b.Interval.Round(time.Millisecond), b.Jitter.Round(time.Millisecond))
		})
	}
}

func TestRealertsAfterWindow(t *testing.T) {
	d := New(Config{Window: time.Hour})
	starts := gen(150*time.Minute, func() time.Duration { return 30 * time.Second })
	got := run(d, host, "198.51.100.7:443", starts, func() uint64 { return 200 })
	if len(got) != 3 { // quiet for one window after each alert: ~0:10, ~1:10, ~2:10
		t.Fatalf("%d beacons over 2.5 h with a 1 h window, want 3", len(got))
	}
	for i := 1; i < len(got); i++ {
		if gap := got[i].Last.Sub(got[i-1].Last); gap < time.Hour {
			t.Errorf("alerts %d and %d %v apart, want at least the 1 h window", i-1, i, gap)
		}
	}
}

// poisson: exponential intervals with the given mean.
func poisson(r *rand.Rand, mean time.Duration) func() time.Duration {
	return func() time.Duration { return time.Duration(r.ExpFloat64() * float64(mean)) }
}

// TestBenignNotDetected measures false positives on benign-looking pairs.
// Each case runs many independent pairs and must raise none.
func TestBenignNotDetected(t *testing.T) {
	const pairs = 1000
	for _, tc := range []struct {
		name   string
		starts func(r *rand.Rand) []time.Duration
		size   func(r *rand.Rand) uint64
	}{
		{"poisson 1/min, fixed size", func(r *rand.Rand) []time.Duration { return gen(6*time.Hour, poisson(r, time.Minute)) },
			func(*rand.Rand) uint64 { return 420 }},
		{"poisson 1/min, varied size", func(r *rand.Rand) []time.Duration { return gen(6*time.Hour, poisson(r, time.Minute)) },
			func(r *rand.Rand) uint64 { return uint64(math.Exp(6 + 1.5*r.NormFloat64())) }},
		{"poisson 1/10 min over 24 h, fixed size", func(r *rand.Rand) []time.Duration { return gen(24*time.Hour, poisson(r, 10*time.Minute)) },
			func(*rand.Rand) uint64 { return 420 }},
		{"human visits: 3-8 sessions a day, bursts of 2-15 conns", humanVisits, func(r *rand.Rand) uint64 { return 400 + uint64(r.IntN(900)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New(Config{})
			fp := 0
			for i := 0; i < pairs; i++ {
				r := rand.New(rand.NewPCG(uint64(i), 7))
				dst := fmt.Sprintf("site%d.example.com", i)
				got := run(d, host, dst, tc.starts(r), func() uint64 { return tc.size(r) })
				for _, b := range got {
					t.Logf("false positive: %d conns, score %.3f ts %.3f size %.3f interval %v jitter %v", b.Count, b.Score, b.TSScore, b.SizeScore, b.Interval.Round(time.Second), b.Jitter.Round(time.Second))
				}
				fp += len(got)
			}
			s := d.Stats()
			t.Logf("%d pairs, %d scorings, %d beacons (false positive rate %.2f%%)", pairs, s.Scored, fp, 100*float64(fp)/pairs)
			if fp != 0 {
				t.Fatalf("%d of %d benign pairs reported as beacons", fp, pairs)
			}
		})
	}
}

func humanVisits(r *rand.Rand) []time.Duration {
	var out []time.Duration
	sessions := 3 + r.IntN(6)
	for s := 0; s < sessions; s++ {
		at := time.Duration(r.Int64N(int64(24 * time.Hour)))
		for c := 2 + r.IntN(14); c > 0; c-- {
			out = append(out, at)
			at += time.Duration(r.Int64N(int64(20 * time.Second)))
		}
	}
	sortDur(out)
	return out
}

func sortDur(v []time.Duration) {
	for i := 1; i < len(v); i++ {
		for j := i; j > 0 && v[j] < v[j-1]; j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
}

// TestCDNManyHostsNotDetected: a page load pulls from many CDN edges; each
// (host, edge) pair sees a handful of connections, far from MinConns, even
// though the office does this every minute.
func TestCDNManyHostsNotDetected(t *testing.T) {
	d := New(Config{})
	r := rand.New(rand.NewPCG(3, 3))
	n := 0
	for minute := 0; minute < 6*60; minute++ {
		for k := 0; k < 10; k++ {
			edge := fmt.Sprintf("198.51.%d.%d:443", r.IntN(50), r.IntN(250))
			at := t0.Add(time.Duration(minute)*time.Minute + time.Duration(k)*time.Second)
			if b, ok := d.Observe(at, host, edge, 600); ok {
				n++
				t.Errorf("beacon on CDN edge: %+v", b)
			}
		}
	}
	if s := d.Stats(); s.Observed != 3600 || n != 0 {
		t.Fatalf("observed %d, beacons %d", s.Observed, n)
	}
}

func TestMemoryBoundUnder100kPairs(t *testing.T) {
	const max = 10000
	d := New(Config{MaxPairs: max})
	dsts := make([]string, 100000)
	for i := range dsts {
		dsts[i] = fmt.Sprintf("%d.example", i)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for round := 0; round < 3; round++ {
		for i, dst := range dsts {
			d.Observe(t0.Add(time.Duration(round*len(dsts)+i)*time.Millisecond), host, dst, 100)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	s := d.Stats()
	if s.Pairs != max {
		t.Errorf("Pairs %d, want the bound %d", s.Pairs, max)
	}
	if s.Evicted != 3*100000-max {
		t.Errorf("Evicted %d, want %d", s.Evicted, 3*100000-max)
	}
	runtime.KeepAlive(dsts)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap grew %d KB for %d pairs (%d B/pair)", grown/1024, max, grown/max)
	if grown > max*600 {
		t.Errorf("heap grew %d bytes for %d pairs of one sample: over 600 B/pair", grown, max)
	}
}

func TestObserveDoesNotAllocate(t *testing.T) {
	d := New(Config{MaxPairs: 64})
	dsts := make([]string, 256)
	for i := range dsts {
		dsts[i] = fmt.Sprintf("%d.example:443", i)
	}
	now := t0
	i := 0
	step := func(dst string) {
		now = now.Add(time.Second)
		d.Observe(now, host, dst, 300)
	}
	// existing pair, past MinConns and scored every 8th call, ring full
	for k := 0; k < 300; k++ {
		step(dsts[0])
	}
	if n := testing.AllocsPerRun(1000, func() { step(dsts[0]) }); n != 0 {
		t.Errorf("Observe on an existing pair: %v allocs, want 0", n)
	}
	// churn through 4× MaxPairs: pairs evicted and reused with their buffers
	for k := 0; k < 2000; k++ {
		step(dsts[k%len(dsts)])
	}
	if n := testing.AllocsPerRun(1000, func() { step(dsts[i%len(dsts)]); i++ }); n != 0 {
		t.Errorf("Observe with eviction churn: %v allocs, want 0", n)
	}
}

func BenchmarkObserve(b *testing.B) {
	for _, pairs := range []int{1, 1000} {
		b.Run(fmt.Sprintf("pairs=%d", pairs), func(b *testing.B) {
			d := New(Config{})
			dsts := make([]string, pairs)
			for i := range dsts {
				dsts[i] = fmt.Sprintf("%d.example:443", i)
			}
			r := rand.New(rand.NewPCG(1, 1))
			now := t0
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				// Poisson arrivals: never a beacon, so every pair past
				// MinConns is rescored every 8th observation (the worst case)
				now = now.Add(time.Duration(r.ExpFloat64() * float64(time.Second)))
				d.Observe(now, host, dsts[i%pairs], 300)
			}
		})
	}
}

// TestConcurrentWorkers: workers sharing one Detector each feed a beacon of
// their own host; every beacon is reported exactly once and no observation
// is lost (run with -race).
func TestConcurrentWorkers(t *testing.T) {
	d := New(Config{})
	const workers, conns = 4, 200
	found := make(chan Beacon, workers*conns)
	done := make(chan struct{})
	for w := 0; w < workers; w++ {
		go func(w int) {
			defer func() { done <- struct{}{} }()
			h := netip.AddrFrom4([4]byte{198, 18, 0, byte(40 + w)})
			for i := 0; i < conns; i++ {
				if b, ok := d.Observe(t0.Add(time.Duration(i)*time.Minute), h, "c2.example.net", 300); ok {
					found <- b
				}
			}
		}(w)
	}
	for w := 0; w < workers; w++ {
		<-done
	}
	close(found)
	hosts := map[netip.Addr]int{}
	for b := range found {
		hosts[b.Host]++
	}
	if s := d.Stats(); len(hosts) != workers || s.Observed != workers*conns || s.Beacons != workers {
		t.Fatalf("beacons per host %v, stats %+v: want %d hosts once each and %d observations", hosts, s, workers, workers*conns)
	}
}
