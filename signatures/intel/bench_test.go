package intel

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Benchmarks at 1k indicators (synthetic) and at the full maltrail trails
// (skipped when ../shared is absent); hit and miss. Per-lookup cost should
// stay flat from 1k to 1.6M (hash probes, one per label for domains).

type benchSet struct {
	s                  *Set
	domains, urlHosts  [][]byte
	urlPaths           [][]byte
	ips                []netip.AddrPort
	missDom            [][]byte
	missIP             []netip.AddrPort
	missHost, missPath [][]byte
}

func newBenchSet(s *Set) *benchSet {
	b := &benchSet{s: s}
	for ind := range s.All {
		switch ind.Kind {
		case KindDomain:
			if len(b.domains) < 1024 {
				b.domains = append(b.domains, []byte("www."+strings.TrimPrefix(ind.Value, "*.")))
			}
		case KindIPPort:
			if len(b.ips) < 1024 {
				b.ips = append(b.ips, netip.MustParseAddrPort(ind.Value))
			}
		case KindURL:
			if len(b.urlHosts) < 1024 && !strings.HasPrefix(ind.Value, "/") {
				i := strings.IndexByte(ind.Value, '/')
				b.urlHosts = append(b.urlHosts, []byte(ind.Value[:i]))
				b.urlPaths = append(b.urlPaths, []byte(ind.Value[i:]))
			}
		}
	}
	for i := range 1024 {
		b.missDom = append(b.missDom, fmt.Appendf(nil, "img%d.cdn.benign-%d.example", i, i))
		b.missIP = append(b.missIP, netip.AddrPortFrom(netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)}), 443))
		b.missHost = append(b.missHost, fmt.Appendf(nil, "www.benign-%d.example", i))
		b.missPath = append(b.missPath, fmt.Appendf(nil, "/static/js/app.%d.js?v=3", i))
	}
	return b
}

func synthetic1k() *Set {
	var sb strings.Builder
	for i := range 1000 {
		switch i % 3 {
		case 0:
			fmt.Fprintf(&sb, "c2-%d.bad-%d.example\n", i, i%17)
		case 1:
			fmt.Fprintf(&sb, "198.18.%d.%d:%d\n", i>>8, i&255, 1000+i)
		case 2:
			fmt.Fprintf(&sb, "gate-%d.bad.example/panel/%d/gate.php\n", i, i)
		}
	}
	s, _ := Parse(strings.NewReader(sb.String()), "synthetic")
	return s
}

var (
	fullOnce sync.Once
	full     *benchSet
	fullErr  error
	oneK     = sync.OnceValue(func() *benchSet { return newBenchSet(synthetic1k()) })
)

func fullSet(b *testing.B) *benchSet {
	fullOnce.Do(func() {
		s, _, err := ParseFile(maltrailPath)
		if err != nil {
			fullErr = err
			return
		}
		full = newBenchSet(s)
	})
	if fullErr != nil {
		if errors.Is(fullErr, os.ErrNotExist) {
			b.Skip("../shared maltrail trails absent")
		}
		b.Fatal(fullErr)
	}
	return full
}

func benchDomain(b *testing.B, bs *benchSet) {
	for _, c := range []struct {
		name  string
		names [][]byte
		hit   bool
	}{{"hit", bs.domains, true}, {"miss", bs.missDom, false}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, ok := bs.s.LookupDomain(c.names[i%len(c.names)]); ok != c.hit {
					b.Fatalf("%s: %v", c.names[i%len(c.names)], ok)
				}
			}
		})
	}
}

func benchIP(b *testing.B, bs *benchSet) {
	for _, c := range []struct {
		name string
		aps  []netip.AddrPort
		hit  bool
	}{{"hit", bs.ips, true}, {"miss", bs.missIP, false}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				ap := c.aps[i%len(c.aps)]
				if _, ok := bs.s.LookupIPPort(ap.Addr(), ap.Port()); ok != c.hit {
					b.Fatalf("%s: %v", ap, ok)
				}
			}
		})
	}
}

func benchURL(b *testing.B, bs *benchSet) {
	for _, c := range []struct {
		name         string
		hosts, paths [][]byte
		hit          bool
	}{{"hit", bs.urlHosts, bs.urlPaths, true}, {"miss", bs.missHost, bs.missPath, false}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				j := i % len(c.hosts)
				if _, ok := bs.s.LookupURL(c.hosts[j], c.paths[j]); ok != c.hit {
					b.Fatalf("%s%s: %v", c.hosts[j], c.paths[j], ok)
				}
			}
		})
	}
}

func BenchmarkLookupDomain_1k(b *testing.B)   { benchDomain(b, oneK()) }
func BenchmarkLookupDomain_Full(b *testing.B) { benchDomain(b, fullSet(b)) }
func BenchmarkLookupIP_1k(b *testing.B)       { benchIP(b, oneK()) }
func BenchmarkLookupIP_Full(b *testing.B)     { benchIP(b, fullSet(b)) }
func BenchmarkLookupURL_1k(b *testing.B)      { benchURL(b, oneK()) }
func BenchmarkLookupURL_Full(b *testing.B)    { benchURL(b, fullSet(b)) }

// BenchmarkLoadMaltrail loads the full trails; besides ns/op it reports
// the heap the set holds (HeapInuse after GC, minus before) and the
// process RSS it added (after returning freed memory to the OS), in MB,
// and the indicators loaded.
func BenchmarkLoadMaltrail(b *testing.B) {
	if _, err := os.Stat(maltrailPath); err != nil {
		b.Skip("../shared maltrail trails absent")
	}
	var heap, rss float64
	var n int
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		debug.FreeOSMemory()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		r0 := rssBytes()
		b.StartTimer()
		s, _, err := ParseFile(maltrailPath)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		debug.FreeOSMemory()
		runtime.ReadMemStats(&m1)
		heap = float64(int64(m1.HeapInuse)-int64(m0.HeapInuse)) / (1 << 20)
		rss = float64(rssBytes()-r0) / (1 << 20)
		n = s.Len()
		runtime.KeepAlive(s)
		b.StartTimer()
	}
	b.ReportMetric(heap, "heap-MB")
	b.ReportMetric(rss, "rss-MB")
	b.ReportMetric(float64(n), "indicators")
}

// rssBytes is the process's resident set (Linux /proc/self/statm).
func rssBytes() int64 {
	raw, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(raw))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}
