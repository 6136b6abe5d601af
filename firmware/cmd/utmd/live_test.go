package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openutm/utm/telemetry/alert"
	"github.com/openutm/utm/telemetry/eve"
	"github.com/openutm/utm/telemetry/spool"
)

func TestQueueFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string // "" for an error
	}{
		{[]string{"3"}, "3"},
		{[]string{"0:3"}, "0,1,2,3"},
		{[]string{"0:1", "5"}, "0,1,5"},
		{[]string{"2:1"}, ""},
		{[]string{"x"}, ""},
		{[]string{"70000"}, ""},
		{[]string{"0:1", "1"}, ""},
		{[]string{"0:100"}, ""},
	} {
		var q queueList
		var err error
		for _, a := range c.args {
			if err = q.Set(a); err != nil {
				break
			}
		}
		switch {
		case c.want == "" && err == nil:
			t.Errorf("-q %v accepted as %s; want an error", c.args, q.String())
		case c.want != "" && (err != nil || q.String() != c.want):
			t.Errorf("-q %v = %s, %v; want %s", c.args, q.String(), err, c.want)
		}
	}
}

// Workers emit concurrently through one sink: every event reaches
// eve.json whole, every alert the spool, each with its own id (run with
// -race).
func TestSinkConcurrentEmit(t *testing.T) {
	dir := t.TempDir()
	ew, err := eve.Create(filepath.Join(dir, "eve.json"))
	if err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(filepath.Join(dir, "spool.db"), spool.Options{BoxID: "box"})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	out := sink{boxID: "box", eve: ew, spool: sp}
	const workers, each = 4, 25
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				out.Emit(&alert.Event{Timestamp: alert.Timestamp(time.Now()), EventType: alert.TypeAlert, Stars: 1,
					Alert: &alert.Alert{SignatureID: 1, Signature: "x"}})
				out.Emit(&alert.Event{Timestamp: alert.Timestamp(time.Now()), EventType: alert.TypeFileInfo,
					FileInfo: &alert.FileInfo{Size: int64(i)}})
			}
		}()
	}
	wg.Wait()
	ew.Close()
	f, err := os.Open(filepath.Join(dir, "eve.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids := map[string]bool{}
	lines := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev alert.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("eve.json line %d is not one whole event: %v", lines+1, err)
		}
		lines++
		if ev.EventType == alert.TypeAlert {
			if ev.ID == "" || ids[ev.ID] || ev.BoxID != "box" {
				t.Fatalf("alert id %q (box %q): missing or repeated", ev.ID, ev.BoxID)
			}
			ids[ev.ID] = true
		}
	}
	if lines != 2*workers*each || len(ids) != workers*each || sp.Len() != workers*each {
		t.Fatalf("eve.json %d lines, %d alert ids, spool %d; want %d, %d, %d", lines, len(ids), sp.Len(), 2*workers*each, workers*each, workers*each)
	}
}

func TestModeFlagsRefused(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--supervise", "-r", "x.pcap"}, "--supervise is for live inspection"},
		{[]string{"--board", "lab", "-q", "0:1", "--no-steer"}, "--board takes one -q queue"},
		{[]string{"-q", "1:0"}, "A <= B"},
	} {
		out, err := exec.Command(utmd, c.args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("utmd %v: %v\n%s\nwant a failure saying %q", c.args, err, out, c.want)
		}
	}
}

func TestRestartBackoff(t *testing.T) {
	var got []time.Duration
	d := time.Duration(0) // the first restart waits nothing
	for i := 0; i < 7; i++ {
		got = append(got, d)
		d = nextBackoff(d)
	}
	want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("backoff sequence %v, want %v", got, want)
		}
	}
}
