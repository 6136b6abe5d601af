//go:build linux

package spool

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestDiskFull fills a tiny tmpfs: Append fails with ErrWrite saying what
// to do, nothing that Append acknowledged is lost, and once space is freed
// (a reopen after deleting sent alerts) the spool goes on.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=512k"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	defer syscall.Unmount(dir, syscall.MNT_DETACH)
	p := filepath.Join(dir, "spool.db")
	s, err := Open(p, Options{BoxID: "full"})
	if err != nil {
		t.Fatal(err)
	}
	acked := 0
	var appendErr error
	for i := 0; i < 100000; i++ {
		e := ev(i, 1)
		e.Summary = strings.Repeat("m", 900) // metadata-sized, fills faster
		if appendErr = s.Append(e); appendErr != nil {
			if e.ID != "" {
				t.Errorf("failed Append left id %q on the event", e.ID)
			}
			break
		}
		acked++
	}
	if appendErr == nil {
		t.Fatal("512 KiB never filled up")
	}
	t.Logf("%d alerts acknowledged before the disk was full: %v", acked, appendErr)
	if !errors.Is(appendErr, ErrWrite) || !strings.Contains(appendErr.Error(), "free disk space") {
		t.Fatalf("Append on a full disk: %v, want ErrWrite saying to free disk space", appendErr)
	}
	if s.Len() != acked {
		t.Fatalf("Len %d after the failure, %d acknowledged", s.Len(), acked)
	}
	s.Close()

	s, err = Open(p, Options{BoxID: "full"})
	if err != nil {
		t.Fatalf("reopen after a full disk: %v", err)
	}
	defer s.Close()
	got := sids(t, s)
	if len(got) != acked {
		t.Fatalf("%d alerts after reopen, %d were acknowledged", len(got), acked)
	}
	for i, sid := range got {
		if sid != i {
			t.Fatalf("entry %d is sid %d", i, sid)
		}
	}
	// The monitor takes some: the freed pages make room again.
	pend, _ := s.Pending(acked / 2)
	if err := s.Delete(pend...); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ev(-1, 3)); err != nil {
		t.Fatalf("append after freeing space: %v", err)
	}
}
