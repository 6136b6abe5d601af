package spool

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

func TestEvictionKeepsThreeStarsLongest(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "spool.db"), Options{BoxID: "b", MaxEntries: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Append(ev(1, 3))
	s.Append(ev(2, 1))
	s.Append(ev(3, 2))
	s.Append(ev(4, 3))
	s.Append(ev(5, 1))
	s.Append(ev(6, 3)) // evicts sid 2 (oldest ★)
	s.Append(ev(7, 3)) // evicts sid 5 (next ★)
	s.Append(ev(8, 3)) // evicts sid 3 (the ★★)
	waitFor(t, func() bool { return s.Evicted() >= 3 })
	time.Sleep(50 * time.Millisecond) // let the spool-full alert land
	pend, _ := s.Pending(100)
	var got []string
	for _, p := range pend {
		got = append(got, string(p.Data))
	}
	all := strings.Join(got, "\n")
	for _, gone := range []string{`"test 2"`, `"test 5"`, `"test 3"`} {
		if strings.Contains(all, gone) {
			t.Errorf("%s should have been evicted", gone)
		}
	}
	for _, kept := range []string{`"test 6"`, `"test 7"`, `"test 8"`} {
		if !strings.Contains(all, kept) {
			t.Errorf("%s should be kept", kept)
		}
	}
	if !strings.Contains(all, "spool full") {
		t.Errorf("no spool-full alert was raised:\n%s", all)
	}
}

func waitFor(t *testing.T, fn func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if fn() {
			return
		}
	}
	t.Fatal("condition not reached in 5s")
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
}
