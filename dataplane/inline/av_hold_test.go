//go:build linux

package inline

// The antivirus hold measurement behind hack/bench/av-hold/run (skipped
// unless AV_HOLD=1): how long the last packet of a 10 MB download waits in
// a fully inspecting utmd -q (the file is hashed, walked and scanned
// before that packet's verdict) against utmd --inspect=none in the same
// run, and utmd's memory under 100 concurrent downloads.

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// holdServer records when /hold/{kind}/{id} wrote its last 1 KiB (after
// the rest and a pause so that the bulk has drained), by path; the client
// looks it up once it has read the last byte (one process, one clock).
type holdServer struct {
	mu    sync.Mutex
	wrote map[string]time.Time
}

func TestAVHoldMeasure(t *testing.T) {
	if os.Getenv("AV_HOLD") == "" {
		t.Skip("a measurement: run hack/bench/av-hold/run (AV_HOLD=1)")
	}
	n := 30
	if v, err := strconv.Atoi(os.Getenv("AV_HOLD_N")); err == nil && v > 0 {
		n = v
	}
	const size = 10 << 20
	plain := make([]byte, size)
	rand.Read(plain)
	// A zip of the same size: a stored random member and deflated text.
	text := bytes.Repeat([]byte("log line 0123456789 the quick brown fox\n"), (4<<20)/40)
	zipped := zipOf(map[string][]byte{"a-random.bin": plain[:6<<20], "b-log.txt": text})
	files := map[string][]byte{"bin": plain, "zip": zipped}

	l := newLab(t)
	s := l.serveAV(t)
	hs := &holdServer{wrote: map[string]time.Time{}}
	s.mux.HandleFunc("/hold/{kind}/{id}", func(w http.ResponseWriter, r *http.Request) {
		b := files[r.PathValue("kind")]
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(b[:len(b)-1024])
		w.(http.Flusher).Flush()
		time.Sleep(40 * time.Millisecond) // the bulk reaches the client
		tail := slices.Clone(b[len(b)-1024:])
		copy(tail, r.PathValue("id")) // unique last bytes
		if r.PathValue("kind") == "zip" {
			tail = b[len(b)-1024:] // the zip's directory must stay intact
		}
		hs.mu.Lock()
		hs.wrote[r.URL.Path] = time.Now()
		hs.mu.Unlock()
		w.Write(tail)
	})
	get := func(path string) (time.Duration, error) {
		resp, err := l.rawClient().Get(avURL(path))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		done := time.Now()
		if err != nil || len(got) != int(resp.ContentLength) {
			return 0, fmt.Errorf("%s: %d bytes, %v", path, len(got), err)
		}
		hs.mu.Lock()
		w := hs.wrote[path]
		hs.mu.Unlock()
		return done.Sub(w), nil
	}
	lat := map[string][]time.Duration{}
	seq := 0
	// Blocks of each mode in turn, so that drift on the shared machine
	// hits both alike.
	for block := 0; block < 3; block++ {
		for _, mode := range []string{"full", "none"} {
			p, _ := l.startAV(t, "--inspect="+mode)
			for _, kind := range []string{"bin", "zip"} {
				for i := 0; i < (n+2)/3; i++ {
					seq++
					d, err := get(fmt.Sprintf("/hold/%s/%s-%d", kind, mode, seq))
					if err != nil {
						t.Fatalf("%s download through --inspect=%s: %v", kind, mode, err)
					}
					lat[kind+"/"+mode] = append(lat[kind+"/"+mode], d)
				}
			}
			p.stop()
		}
	}
	pct := func(d []time.Duration, q float64) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[min(len(s)-1, int(q*float64(len(s))))]
	}
	var out strings.Builder
	fmt.Fprintf(&out, "hold after the last byte of a 10 MB file (server writes the last 1 KiB -> client has it), %d downloads per cell\n", len(lat["bin/full"]))
	fmt.Fprintf(&out, "%-5s %10s %10s %10s %10s %12s %12s\n", "file", "full p50", "full p99", "none p50", "none p99", "added p50", "added p99")
	for _, kind := range []string{"bin", "zip"} {
		f, z := lat[kind+"/full"], lat[kind+"/none"]
		fmt.Fprintf(&out, "%-5s %10v %10v %10v %10v %12v %12v\n", kind,
			pct(f, .5).Round(10*time.Microsecond), pct(f, .99).Round(10*time.Microsecond),
			pct(z, .5).Round(10*time.Microsecond), pct(z, .99).Round(10*time.Microsecond),
			(pct(f, .5) - pct(z, .5)).Round(10*time.Microsecond), (pct(f, .99) - pct(z, .99)).Round(10*time.Microsecond))
	}
	t.Log("\n" + out.String())
	fmt.Print(out.String())

	// Memory under 100 concurrent downloads of 4 MB, each paced over
	// about 3 s so that all are open at once.
	const conc, csize = 100, 4 << 20
	body := plain[:csize]
	s.mux.HandleFunc("/paced/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(csize))
		for off := 0; off < csize; off += 256 << 10 {
			if _, err := w.Write(body[off : off+256<<10]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(200 * time.Millisecond)
		}
	})
	var mem strings.Builder
	for _, mode := range []string{"full", "none"} {
		p, _ := l.startAV(t, "--inspect="+mode)
		pid := p.cmd.Process.Pid
		before := vmRSS(t, pid)
		stop := make(chan struct{})
		peak := before
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
					peak = max(peak, vmRSS(t, pid))
				}
			}
		}()
		var fails sync.Map
		var dl sync.WaitGroup
		for i := range conc {
			dl.Add(1)
			go func() {
				defer dl.Done()
				c := l.rawClient()
				c.Timeout = 30 * time.Second
				resp, err := c.Get(avURL(fmt.Sprintf("/paced/%s-%d", mode, i)))
				if err != nil {
					fails.Store(i, err)
					return
				}
				defer resp.Body.Close()
				if n, err := io.Copy(io.Discard, resp.Body); err != nil || n != csize {
					fails.Store(i, fmt.Errorf("%d bytes, %v", n, err))
				}
			}()
		}
		dl.Wait()
		close(stop)
		wg.Wait()
		after := vmRSS(t, pid)
		fails.Range(func(k, v any) bool { t.Errorf("--inspect=%s download %v: %v", mode, k, v); return true })
		fmt.Fprintf(&mem, "--inspect=%-4s RSS before %6.1f MB, peak %6.1f MB, after %6.1f MB: %6.2f MB per flow (%d concurrent 4 MB downloads)\n",
			mode, mb(before), mb(peak), mb(after), mb(peak-before)/conc, conc)
		p.stop()
	}
	t.Log("\n" + mem.String())
	fmt.Print(mem.String())
}

func mb(kb int64) float64 { return float64(kb) / 1024 }

// vmRSS reads VmRSS (kB) of pid.
func vmRSS(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}
