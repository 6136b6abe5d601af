package spool

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/openutm/utm/telemetry/alert"
)

// TestGroupCommit: 64 concurrent appenders share commits, every alert gets
// its own id, all of them are in the file after a reopen, and an Append
// racing Close either returns nil (and is in the file) or ErrClosed.
func TestGroupCommit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "spool.db")
	s, err := Open(p, Options{BoxID: "g", GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	const G, N = 64, 20
	var mu sync.Mutex
	ids := map[string]int{}
	var wg sync.WaitGroup
	for g := range G {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range N {
				e := ev(g*1000+i, alert.Stars(1+i%3))
				if err := s.Append(e); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ids[e.ID] = e.Alert.SignatureID
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(ids) != G*N || s.Len() != G*N {
		t.Fatalf("%d distinct ids, Len %d; want %d", len(ids), s.Len(), G*N)
	}
	if g := s.Groups(); g >= G*N/2 {
		t.Fatalf("%d commits for %d appends from %d appenders: no grouping", g, G*N, G)
	}
	t.Logf("%d appends in %d commits", G*N, s.Groups())

	// Appends racing Close.
	var ok sync.Map
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				e := ev(100000+g*1000+i, 3)
				err := s.Append(e)
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				ok.Store(e.Alert.SignatureID, true)
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	s, err = Open(p, Options{BoxID: "g", GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	have := map[int]bool{}
	for _, sid := range sids(t, s) {
		have[sid] = true
	}
	for _, sid := range ids {
		if !have[sid] {
			t.Fatalf("sid %d acknowledged but not in the spool after reopen", sid)
		}
	}
	n := 0
	ok.Range(func(k, _ any) bool {
		n++
		if !have[k.(int)] {
			t.Errorf("sid %d acknowledged before Close but not in the spool", k)
		}
		return true
	})
	t.Logf("%d appends acknowledged while Close ran", n)
}

// TestKill9GroupCommit: 8 appenders with group commit in a child killed
// with SIGKILL; every alert whose Append returned is in the spool.
func TestKill9GroupCommit(t *testing.T) {
	if p := os.Getenv("SPOOL_GROUP_CHILD"); p != "" {
		s, err := Open(p, Options{BoxID: "k", GroupCommit: true})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		var mu sync.Mutex
		for g := range 8 {
			go func() {
				for i := 0; ; i++ {
					if err := s.Append(ev(g*1000000+i, 1)); err != nil {
						fmt.Println("error", err)
						os.Exit(1)
					}
					mu.Lock()
					fmt.Println("appended", g*1000000+i)
					mu.Unlock()
				}
			}()
		}
		select {}
	}
	p := filepath.Join(t.TempDir(), "spool.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9GroupCommit$")
	cmd.Env = append(os.Environ(), "SPOOL_GROUP_CHILD="+p)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	acked := map[int]bool{}
	for sc.Scan() {
		var i int
		if _, err := fmt.Sscanf(sc.Text(), "appended %d", &i); err == nil {
			acked[i] = true
			if len(acked) >= 400 {
				cmd.Process.Kill()
				break
			}
		}
	}
	cmd.Wait()
	if len(acked) < 400 {
		t.Fatalf("child stopped early after %d appends", len(acked))
	}
	s, err := Open(p, Options{BoxID: "k"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	have := map[int]bool{}
	for _, sid := range sids(t, s) {
		have[sid] = true
	}
	for sid := range acked {
		if !have[sid] {
			t.Fatalf("after kill -9: sid %d was acknowledged but is not in the spool (%d entries)", sid, len(have))
		}
	}
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func flowAlert(sid int, stars alert.Stars, flow uint64) *alert.Event {
	e := ev(sid, stars)
	e.FlowID, e.SrcIP, e.SrcPort, e.DestIP, e.DestPort, e.Proto = flow, "198.18.1.2", 40000, "198.18.2.2", 80, "TCP"
	return e
}

func pendingEvents(t *testing.T, s *Spool) []alert.Event {
	t.Helper()
	p, err := s.Pending(100000)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]alert.Event, len(p))
	for i, e := range p {
		if err := json.Unmarshal(e.Data, &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestAggregate: 1000 identical ★ alerts of one flow become one record
// with count 1000, held until the window ends; ★★★ are never merged nor
// held; another flow or signature is another record; after the window a
// new record starts; the count survives a reopen.
func TestAggregate(t *testing.T) {
	for _, group := range []bool{false, true} {
		t.Run(fmt.Sprintf("group=%v", group), func(t *testing.T) {
			c := &clock{t: time.Unix(1_800_000_000, 0)}
			p := filepath.Join(t.TempDir(), "spool.db")
			opts := Options{BoxID: "a", AggregateWindow: 5 * time.Second, Now: c.now, GroupCommit: group}
			s, err := Open(p, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { s.Close() }()
			var wg sync.WaitGroup
			ids := make([]string, 1000)
			for g := range 4 { // concurrent, so group commits merge within one transaction too
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := g; i < 1000; i += 4 {
						e := flowAlert(2210001, 1, 7)
						if err := s.Append(e); err != nil {
							t.Error(err)
						}
						ids[i] = e.ID
					}
				}()
			}
			wg.Wait()
			for range 200 {
				if err := s.Append(flowAlert(2210002, 3, 7)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Append(flowAlert(2210001, 1, 8)); err != nil { // another flow
				t.Fatal(err)
			}
			if err := s.Append(flowAlert(2210003, 2, 7)); err != nil { // another signature
				t.Fatal(err)
			}
			// Open windows: only the ★★★ leave now.
			got := pendingEvents(t, s)
			if len(got) != 200 {
				t.Fatalf("inside the window Pending gave %d records, want the 200 ★★★ only", len(got))
			}
			for _, e := range got {
				if e.Stars != 3 || e.Count != 0 {
					t.Fatalf("inside the window Pending gave stars %d count %d", e.Stars, e.Count)
				}
			}
			if s.Held() != 3 || s.Len() != 203 {
				t.Fatalf("held %d, len %d; want 3 held, 203 records", s.Held(), s.Len())
			}
			// The merged count is durable before the window ends.
			s.Close()
			if s, err = Open(p, opts); err != nil {
				t.Fatal(err)
			}
			got = pendingEvents(t, s) // a reopened spool holds nothing back
			if len(got) != 203 {
				t.Fatalf("after reopen %d records, want 203", len(got))
			}
			c.add(5 * time.Second)
			counts := map[int]int{}
			var agg alert.Event
			for _, e := range got {
				counts[e.Alert.SignatureID] += max(e.Count, 1)
				if e.Alert.SignatureID == 2210001 && e.FlowID == 7 {
					agg = e
				}
			}
			if counts[2210001] != 1001 || counts[2210002] != 200 || counts[2210003] != 1 {
				t.Fatalf("alerts per sid %v, want 2210001:1001 2210002:200 2210003:1", counts)
			}
			if agg.Count != 1000 {
				t.Fatalf("the flow's ★ record has count %d, want 1000", agg.Count)
			}
			for i, id := range ids {
				if id != agg.ID {
					t.Fatalf("merged alert %d got id %q, want the record's %q", i, id, agg.ID)
				}
			}
			// A new window starts a new record, which is held; the old is not.
			e := flowAlert(2210001, 1, 7)
			if err := s.Append(e); err != nil {
				t.Fatal(err)
			}
			if e.ID == agg.ID || s.Held() != 1 {
				t.Fatalf("after reopen the alert joined %q (held %d), want a new held record", e.ID, s.Held())
			}
			c.add(5 * time.Second)
			if got := pendingEvents(t, s); len(got) != 204 {
				t.Fatalf("after the window %d records pending, want 204", len(got))
			}
		})
	}
}

// TestAggregateWindowEnds: a ★ record released by Pending is closed: a
// later alert of the flow is a new record even inside the clock window.
func TestAggregateReleasedIsClosed(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	s, err := Open(filepath.Join(t.TempDir(), "spool.db"), Options{BoxID: "a", AggregateWindow: 5 * time.Second, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, b := flowAlert(1, 2, 9), flowAlert(1, 2, 9)
	s.Append(a)
	c.add(5 * time.Second)
	p, _ := s.Pending(10)
	if len(p) != 1 {
		t.Fatalf("pending %d after the window, want 1", len(p))
	}
	s.Append(b)
	if a.ID == b.ID {
		t.Fatal("an alert was merged into a record already handed to the uplink")
	}
	if err := s.Delete(p...); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 1 || s.Held() != 1 {
		t.Fatalf("len %d held %d, want the new record held", s.Len(), s.Held())
	}
}

// BenchmarkAppend: alerts/s of one transaction per Append against group
// commit, with 1, 8 and 64 concurrent appenders, on a bbolt file on disk.
func BenchmarkAppend(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts Options
	}{
		{"each", Options{}},
		{"group", Options{GroupCommit: true}},
		{"group2ms", Options{GroupCommit: true, GroupWindow: 2 * time.Millisecond}},
	} {
		for _, par := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%s/appenders=%d", mode.name, par), func(b *testing.B) {
				o := mode.opts
				o.BoxID, o.MaxEntries = "bench", 1<<30
				s, err := Open(filepath.Join(b.TempDir(), "spool.db"), o)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				evs := make([]*alert.Event, b.N)
				for i := range evs {
					evs[i] = ev(i, alert.Stars(1+i%3))
				}
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for g := range par {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := g; i < b.N; i += par {
							if err := s.Append(evs[i]); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "alerts/s")
				if g := s.Groups(); g > 0 {
					b.ReportMetric(float64(b.N)/float64(g), "alerts/commit")
				}
			})
		}
	}
}
