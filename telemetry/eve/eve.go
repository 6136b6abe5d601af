// Package eve writes events as EVE JSON lines (one event per line), the
// format Suricata writes to eve.json and that Filebeat, Wazuh and EveBox
// read.
//
// Emit marshals and appends one line under a mutex; it is called once per
// alert or file, never per packet. Write errors (a full disk) are counted
// and logged once per error streak; the engine keeps running and alerts
// still reach the spool.
package eve

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/openutm/utm/telemetry/alert"
)

// ErrCreate is returned (wrapped) by Create when the directory or the file
// cannot be created or opened.
var ErrCreate = errors.New("eve: cannot open the event log")

// Writer appends events to a file. Errors counts events that could not be
// written.
type Writer struct {
	mu     sync.Mutex
	f      *os.File
	w      *bufio.Writer
	path   string
	failed bool
	Errors atomic.Uint64
	closed bool
}

// Create opens path for appending, creating it and its directory.
func Create(path string) (*Writer, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("%w: %w (check the log directory given with -l and its permissions)", ErrCreate, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("%w: %w (check the log directory given with -l, its permissions and free space)", ErrCreate, err)
	}
	return &Writer{f: f, w: bufio.NewWriterSize(f, 64<<10), path: path}, nil
}

// Emit writes ev as one line and flushes it, so a reader (tail -f, a log
// shipper) sees it at once.
func (w *Writer) Emit(ev *alert.Event) {
	b, err := json.Marshal(ev)
	if err != nil {
		w.fail(err)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.w.Write(b)
	w.w.WriteByte('\n')
	if err := w.w.Flush(); err != nil {
		w.failLocked(err)
		w.w.Reset(w.f)
		return
	}
	w.failed = false
}

func (w *Writer) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failLocked(err)
}

func (w *Writer) failLocked(err error) {
	w.Errors.Add(1)
	if !w.failed {
		slog.Error("cannot write eve.json; events are lost from the file (alerts still reach the spool): free disk space or fix permissions", "path", w.path, "err", err)
	}
	w.failed = true
}

// Close flushes and closes the file. It is safe to call more than once.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.w.Flush()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}
