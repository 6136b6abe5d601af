package eve

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openutm/utm/telemetry/alert"
)

func TestConcurrentLines(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log", "eve.json")
	w, err := Create(p)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 250; i++ {
				w.Emit(&alert.Event{Timestamp: alert.Timestamp(time.Now()), EventType: alert.TypeFileInfo, FileInfo: &alert.FileInfo{Filename: "x", Size: int64(i)}})
			}
		}()
	}
	wg.Wait()
	w.Close()
	w.Close()
	f, _ := os.Open(p)
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		var ev alert.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %d is not an event: %v", n, err)
		}
		n++
	}
	if n != 1000 {
		t.Fatalf("%d lines, want 1000", n)
	}
}

// TestDiskFull writes to /dev/full (every write fails with ENOSPC): each
// lost event is counted, the log says so once per streak, and Emit never
// blocks or panics.
func TestDiskFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full on this system")
	}
	var logs bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(old)
	w, err := Create("/dev/full")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 0; i < 3; i++ {
		w.Emit(&alert.Event{Timestamp: alert.Timestamp(time.Now()), EventType: alert.TypeAlert})
	}
	if w.Errors.Load() != 3 {
		t.Fatalf("Errors = %d, want 3", w.Errors.Load())
	}
	if n := strings.Count(logs.String(), "cannot write eve.json"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "free disk space") {
		t.Fatalf("the log line does not say what to do:\n%s", logs.String())
	}
}

func TestCreateError(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o600)
	if _, err := Create(filepath.Join(dir, "file", "eve.json")); !errors.Is(err, ErrCreate) {
		t.Fatalf("Create under a regular file: %v, want ErrCreate", err)
	}
}
