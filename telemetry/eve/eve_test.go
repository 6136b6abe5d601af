package eve

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
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
