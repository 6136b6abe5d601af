package spool

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openutm/utm/telemetry/alert"
)

func ev(sid int, stars alert.Stars) *alert.Event {
	return &alert.Event{Timestamp: alert.Timestamp(time.Now()), EventType: alert.TypeAlert, Stars: stars,
		Alert: &alert.Alert{Signature: fmt.Sprintf("test %d", sid), SignatureID: sid}}
}

func TestAppendReopenOrder(t *testing.T) {
	p := filepath.Join(t.TempDir(), "spool.db")
	s, err := Open(p, Options{BoxID: "box-a"})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for i := 0; i < 20; i++ {
		e := ev(i, 1)
		if err := s.Append(e); err != nil {
			t.Fatal(err)
		}
		if e.ID == "" || ids[e.ID] || e.BoxID != "box-a" || !strings.HasPrefix(e.ID, "box-a-") {
			t.Fatalf("bad or duplicate id %q", e.ID)
		}
		ids[e.ID] = true
	}
	s.Close()
	s, err = Open(p, Options{BoxID: "box-a"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pend, _ := s.Pending(100)
	if len(pend) != 20 || s.Len() != 20 {
		t.Fatalf("after reopen: %d pending, Len %d", len(pend), s.Len())
	}
	for i, e := range pend {
		if !strings.Contains(string(e.Data), fmt.Sprintf(`"test %d"`, i)) {
			t.Fatalf("entry %d out of order: %s", i, e.Data)
		}
	}
	s.Delete(pend[:5]...)
	s.Delete(pend[:5]...) // twice: no harm
	if s.Len() != 15 {
		t.Fatalf("Len after delete = %d", s.Len())
	}
	e := ev(99, 3)
	s.Append(e)
	if ids[e.ID] {
		t.Fatalf("id %q reused after reopen", e.ID)
	}
}

func sids(t *testing.T, s *Spool) []int {
	t.Helper()
	pend, err := s.Pending(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, p := range pend {
		var e alert.Event
		if err := json.Unmarshal(p.Data, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Alert.SignatureID)
	}
	return out
}

// TestEvictionKeepsThreeStarsLongest fills a spool of 5 and checks which
// alerts are left: ★ go first, then ★★, the oldest first; ★★★ last. The
// first eviction also spools the spool-full notice, which ranks with ★★★.
func TestEvictionKeepsThreeStarsLongest(t *testing.T) {
	p := filepath.Join(t.TempDir(), "spool.db")
	s, err := Open(p, Options{BoxID: "b", MaxEntries: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, a := range []struct {
		sid   int
		stars alert.Stars
	}{{1, 3}, {2, 1}, {3, 2}, {4, 3}, {5, 1}} {
		if err := s.Append(ev(a.sid, a.stars)); err != nil {
			t.Fatal(err)
		}
	}
	if s.Evicted() != 0 || s.Len() != 5 {
		t.Fatalf("evicted %d, len %d before the spool was full", s.Evicted(), s.Len())
	}
	s.Append(ev(6, 3)) // evicts 2 (oldest ★) and, for the notice, 5 (next ★)
	if got, want := fmt.Sprint(sids(t, s)), fmt.Sprint([]int{1, 3, 4, 6, SIDSpoolFull}); got != want {
		t.Fatalf("after the first eviction: %s, want %s", got, want)
	}
	s.Append(ev(7, 3)) // evicts 3 (the only ★★)
	s.Append(ev(8, 3)) // evicts 1 (oldest ★★★)
	s.Append(ev(9, 2)) // evicts 4 (oldest ★★★): a ★★ still enters
	s.Append(ev(10, 1))
	want := []int{6, SIDSpoolFull, 7, 8, 10}
	if got := sids(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after more evictions: %v, want %v", got, want)
	}
	if s.Evicted() != 6 || s.Len() != 5 {
		t.Fatalf("Evicted() = %d, Len() = %d; want 6 and 5", s.Evicted(), s.Len())
	}
	// The order survives a reopen and the index still evicts right.
	s.Close()
	s, err = Open(p, Options{BoxID: "b", MaxEntries: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Append(ev(11, 3)) // evicts 10 (★); a new streak: a new notice evicts 6
	want = []int{SIDSpoolFull, 7, 8, 11, SIDSpoolFull}
	if got := sids(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after reopen: %v, want %v", got, want)
	}
}

// TestIDsUnique: concurrent appends, a reopen and a second spool file for
// the same box (a replaced disk) never produce the same id.
func TestIDsUnique(t *testing.T) {
	dir := t.TempDir()
	seen := map[string]bool{}
	var mu sync.Mutex
	for round, file := range []string{"a.db", "a.db", "b.db"} {
		s, err := Open(filepath.Join(dir, file), Options{BoxID: "box"})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					e := ev(i, 1)
					if err := s.Append(e); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if seen[e.ID] {
						t.Errorf("round %d: id %s given twice", round, e.ID)
					}
					seen[e.ID] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		s.Close()
	}
	if len(seen) != 600 {
		t.Fatalf("%d distinct ids, want 600", len(seen))
	}
	// An id the caller set is kept.
	s, _ := Open(filepath.Join(dir, "a.db"), Options{BoxID: "box"})
	defer s.Close()
	e := ev(1, 1)
	e.ID = "mine"
	s.Append(e)
	if e.ID != "mine" {
		t.Fatalf("Append replaced a set id with %q", e.ID)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o600)
	_, err := Open(filepath.Join(dir, "file", "spool.db"), Options{})
	if !errors.Is(err, ErrOpen) || !strings.Contains(err.Error(), "disk space") {
		t.Fatalf("Open under a file: %v, want ErrOpen saying what to check", err)
	}
	s, err := Open(filepath.Join(dir, "spool.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Append(ev(1, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, err := s.Pending(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Pending after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestKill9 appends in a child process that is killed with SIGKILL: every
// alert the child reported as appended is in the spool afterwards.
func TestKill9(t *testing.T) {
	if os.Getenv("SPOOL_CHILD") != "" {
		s, err := Open(os.Getenv("SPOOL_CHILD"), Options{BoxID: "k"})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		for i := 0; ; i++ {
			if err := s.Append(ev(i, 1)); err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			fmt.Println("appended", i)
		}
	}
	p := filepath.Join(t.TempDir(), "spool.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$")
	cmd.Env = append(os.Environ(), "SPOOL_CHILD="+p)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	acked := -1
	for sc.Scan() {
		var i int
		if _, err := fmt.Sscanf(sc.Text(), "appended %d", &i); err == nil {
			acked = i
			if i >= 200 {
				cmd.Process.Kill()
				break
			}
		}
	}
	cmd.Wait()
	if acked < 200 {
		t.Fatalf("child stopped early at %d", acked)
	}
	s, err := Open(p, Options{BoxID: "k"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Len() < acked+1 {
		t.Fatalf("after kill -9: %d alerts in the spool, child had acknowledged %d", s.Len(), acked+1)
	}
	// In order, and the spool goes on where it stopped.
	got := sids(t, s)
	for i := 0; i <= acked; i++ {
		if got[i] != i {
			t.Fatalf("after kill -9: entry %d is sid %d", i, got[i])
		}
	}
	e := ev(-1, 1)
	if err := s.Append(e); err != nil {
		t.Fatalf("append after kill -9: %v", err)
	}
	if got := sids(t, s); got[len(got)-1] != -1 {
		t.Fatalf("the new alert is not last: %v", got[len(got)-5:])
	}
}
