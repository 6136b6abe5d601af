package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openutm/utm/firmware/config"
	"github.com/openutm/utm/signatures/bundle"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

const reloadRules = `alert tcp any any -> any 80 (msg:"one"; content:"a"; sid:9400001; rev:1;)
drop tcp any any -> any 80 (msg:"two"; content:"b"; sid:9400002; rev:1;)
alert tcp any any -> any 80 (msg:"broken"; content:"c"; nosuchkeyword; sid:9400003; rev:1;)
`

// TestReloadOnSIGHUP: SIGHUP loads the rule file again and swaps the new
// bundle in, logging the counts; a file that cannot be loaded leaves the
// running bundle alone and says what to do.
func TestReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "local.rules")
	if err := os.WriteFile(rules, []byte(reloadRules), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuf
	log := slog.New(slog.NewTextHandler(&logs, nil))
	swapped := make(chan *bundle.Bundle, 4)
	r := newReloader(log, flags{rules: rules}, config.Signatures{}, func(b *bundle.Bundle) { swapped <- b })
	notifyHUP()
	defer func() { hupStop() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.watch(ctx)

	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	select {
	case b := <-swapped:
		if b.Rules.Len() != 2 || len(b.RuleErrors) != 1 {
			t.Fatalf("reloaded bundle: %d rules, %d rejected; want 2 and 1", b.Rules.Len(), len(b.RuleErrors))
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no reload within 10 s of SIGHUP; log:\n%s", logs.String())
	}
	for deadline := time.Now().Add(5 * time.Second); r.reloads.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), `msg="rules reloaded: loaded=2 rejected=1"`) {
		t.Fatalf("log lacks the reload line:\n%s", logs.String())
	}

	os.Remove(rules)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for r.failures.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case b := <-swapped:
		t.Fatalf("a failed reload swapped in a bundle of %d rules", b.Rules.Len())
	default:
	}
	if r.failures.Load() != 1 || r.reloads.Load() != 1 {
		t.Fatalf("reloads %d failures %d; want 1 and 1", r.reloads.Load(), r.failures.Load())
	}
	if !strings.Contains(logs.String(), "rules reload failed: still inspecting with the previous signatures") {
		t.Fatalf("log does not say the old rules stay:\n%s", logs.String())
	}
}

// BenchmarkReloadETOpen: load and compile all of ET Open 2019 as a SIGHUP
// does, off the packet path (the swap itself is one atomic store per
// worker).
func BenchmarkReloadETOpen(b *testing.B) {
	dir := "../../../../shared/data/et-open-2019" // beside the repository
	if d := os.Getenv("ET_OPEN_DIR"); d != "" {
		dir = d
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.rules"))
	if len(files) == 0 {
		b.Skip("no ET Open rules in " + dir + " (set ET_OPEN_DIR)")
	}
	var all bytes.Buffer
	for _, f := range files {
		d, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		all.Write(d)
		all.WriteByte('\n')
	}
	path := filepath.Join(b.TempDir(), "et.rules")
	os.WriteFile(path, all.Bytes(), 0o600)
	log := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	var got *bundle.Bundle
	r := newReloader(log, flags{rules: path}, config.Signatures{}, func(nb *bundle.Bundle) { got = nb })
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := r.reload(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(got.Rules.Len()), "rules")
}
