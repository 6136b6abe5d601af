// Package replay runs the inline engine over a capture file: the same
// packet path as NFQUEUE, with the capture's timestamps as the clock and
// verdicts counted instead of applied. It is how analysts check a pcap and
// how the golden tests pin the engine's output.
package replay

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/openutm/utm/dataplane/capture"
	"github.com/openutm/utm/dataplane/engine"
)

// Result counts what a replay saw.
type Result struct {
	Packets                   uint64
	Accepted, Dropped, Reject uint64
}

// Processor takes one packet at a time: an *engine.Engine, or the inline
// worker wrapping one (utmd -r), so a replay runs the inline packet path.
type Processor interface {
	Process(ts time.Time, pkt []byte) engine.Verdict
	Close() // ends the flows: open files are reported
}

// File feeds every IP packet of the pcap or pcapng at path to eng, then
// closes eng's flows so open files are reported.
func File(path string, eng Processor) (Result, error) {
	var res Result
	r, err := capture.Open(path)
	if err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	defer r.Close()
	for {
		ts, pkt, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			eng.Close()
			return res, fmt.Errorf("replay %s after %d packets: %w", path, res.Packets, err)
		}
		res.Packets++
		switch eng.Process(ts, pkt) {
		case engine.Accept, engine.Bypass:
			res.Accepted++
		case engine.Drop:
			res.Dropped++
		case engine.Reject:
			res.Reject++
		}
	}
	eng.Close()
	return res, nil
}
