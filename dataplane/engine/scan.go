package engine

import (
	"errors"

	"github.com/openutm/utm/dataplane/archive"
	"github.com/openutm/utm/signatures/av"
	"github.com/openutm/utm/signatures/bundle"
)

// errStopWalk ends an archive walk at the first malicious member.
var errStopWalk = errors.New("engine: malicious member found")

// scanResult is what scanning a file and its members found.
type scanResult struct {
	malicious   bool
	threat      string // the threat, "... in a/b.exe" for a member
	unscannable string // why (part of) the file could not be scanned; "" if scanned
	partial     bool   // a member or the container was damaged: some bytes unscanned
	err         error  // the scanner failed
}

// scan scans data (sums: its digests when the caller has them), then, when it is a container (zip, gzip, bzip2, xz,
// tar, ...), every member at every depth within Config.Archive's limits.
// A tripped limit (a decompression bomb) or an encrypted member makes the
// file unscannable; the members seen up to there are scanned. It runs
// while the packet that completed the file is held.
func (e *Engine) scan(b *bundle.Bundle, data []byte, name string, sums av.Sums) scanResult {
	var r scanResult
	if b.AV == nil || len(data) == 0 {
		return r
	}
	res, err := b.AV.ScanWith(data, av.ScanMeta{Name: name, Sums: sums})
	switch {
	case res.Malicious:
		r.malicious, r.threat = true, res.Threat
		return r
	case errors.Is(err, av.ErrTimeout):
		e.stats.ScanErrors.Add(1)
		r.unscannable = "scan time limit exceeded"
	case err != nil:
		r.err = err
		return r
	case res.Verdict == av.VerdictPartial:
		r.partial = true // larger than the scanner's MaxFileSize: the start was scanned
	}
	if archive.Detect(data) == archive.None {
		return r
	}
	st, err := archive.Walk(data, e.cfg.Archive, func(en archive.Entry, member []byte) error {
		if member == nil {
			return nil // encrypted or skipped: counted in the stats
		}
		res, err := b.AV.ScanWith(member, av.ScanMeta{Name: en.Path, Depth: en.Depth})
		if err != nil && !res.Malicious {
			r.partial = true // a member over the scanner's limits: the rest goes on
			return nil
		}
		if res.Malicious {
			r.malicious, r.threat = true, res.Threat+" in "+en.Path
			return errStopWalk
		}
		return nil
	})
	e.stats.ArchiveMembers.Add(uint64(st.Entries))
	switch {
	case r.malicious, r.unscannable != "":
	case errors.Is(err, archive.ErrBomb):
		e.stats.ArchiveBombs.Add(1)
		r.unscannable = "decompression limit exceeded: " + err.Error()
	case errors.Is(err, archive.ErrCorrupt), st.Skipped > 0:
		// A damaged container, or members in a method the unpacker does
		// not know (zip deflate64/implode, 7z PPMd): what was read is
		// scanned, the rest is reported partially scanned.
		r.partial = true
	case st.Encrypted > 0:
		e.stats.ArchiveEncrypted.Add(1)
		r.unscannable = "encrypted archive member"
	}
	return r
}
