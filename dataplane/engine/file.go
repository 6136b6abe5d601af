package engine

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"net/http"
	"sync"

	"github.com/openutm/utm/signatures/rules"
	"github.com/openutm/utm/telemetry/alert"
)

// fileState follows one body being transferred.
type fileState struct {
	active    bool
	name      []byte
	meta      *reqMeta
	size      int64
	buf       *[]byte // bytes kept for scanning; nil when none
	overflow  bool    // more than MaxScanSize or the total budget
	gap       bool    // bytes of the transfer were never seen (stream gap)
	md5, sha1 hash.Hash
	sha256    hash.Hash
	sum       [sha256.Size]byte
}

// scanPool holds scan buffers up to 1 MiB; larger ones go to the GC.
var scanPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func (e *Engine) startFile(f *fileState, meta *reqMeta) {
	f.active = true
	f.meta = meta
	f.size = 0
	f.overflow, f.gap = false, false
	if f.md5 == nil {
		f.md5, f.sha1, f.sha256 = md5.New(), sha1.New(), sha256.New()
	} else {
		f.md5.Reset()
		f.sha1.Reset()
		f.sha256.Reset()
	}
	e.stats.Files.Add(1)
}

func (e *Engine) fileData(f *fileState, data []byte) {
	f.size += int64(len(data))
	f.md5.Write(data)
	f.sha1.Write(data)
	f.sha256.Write(data)
	if f.overflow {
		return
	}
	if f.buf == nil {
		f.buf = scanPool.Get().(*[]byte)
		*f.buf = (*f.buf)[:0]
		e.fileMem += int64(cap(*f.buf))
	}
	if len(*f.buf)+len(data) > e.cfg.MaxScanSize || e.fileMem+int64(len(data)) > e.cfg.MaxScanTotal {
		f.overflow = true
		return
	}
	before := cap(*f.buf)
	*f.buf = append(*f.buf, data...)
	e.fileMem += int64(cap(*f.buf) - before)
}

// dropFile releases f's buffer without a verdict.
func (e *Engine) dropFile(f *fileState) {
	if f.buf != nil {
		e.fileMem -= int64(cap(*f.buf))
		if cap(*f.buf) <= 1<<20 {
			scanPool.Put(f.buf)
		}
		f.buf = nil
	}
	f.active = false
}

// endFile scans a finished (or cut) body, reports it, and blocks the flow if
// it is malicious. It runs while the packet that ended the body is held.
func (e *Engine) endFile(st *flowState, dir int, f *fileState, complete bool) {
	b := e.pb
	var data []byte
	if f.buf != nil {
		data = *f.buf
	}
	info := &alert.FileInfo{
		Filename: string(f.name),
		Size:     f.size,
		MD5:      hex.EncodeToString(f.md5.Sum(f.sum[:0])),
		SHA1:     hex.EncodeToString(f.sha1.Sum(f.sum[:0])),
		SHA256:   hex.EncodeToString(f.sha256.Sum(f.sum[:0])),
		State:    "CLOSED",
		Verdict:  "clean",
	}
	if !complete {
		info.State = "TRUNCATED"
	}
	if len(data) > 0 {
		info.Magic = http.DetectContentType(data)
	}
	if f.overflow || f.gap {
		// Only the first MaxScanSize bytes were kept, or a stream gap cut
		// the transfer: scan what was kept, and say the rest went
		// unscanned.
		e.stats.FilesPartial.Add(1)
		info.Verdict = "partially-scanned"
	}
	malicious := false
	if b.AV != nil && len(data) > 0 {
		res, err := b.AV.Scan(data)
		info.Scanned = err == nil
		switch {
		case err != nil:
			e.stats.ScanErrors.Add(1)
			info.Verdict = "unscanned"
			e.log.Warn("file scan failed; the file was let through", "flow_id", st.f.ID, "file", info.Filename, "err", err)
		case res.Malicious:
			malicious = true
			info.Verdict = "malicious"
			info.Threat = res.Threat
		}
	}
	if !malicious && len(data) > 0 {
		in := e.input(st, dir)
		if dir == 0 {
			in.Buf[rules.BufHTTPRequestBody] = data
		} else {
			in.Buf[rules.BufHTTPResponseBody] = data
		}
		e.matchRules(b, st, in, f.meta)
	}
	ev := e.event(st, dir, alert.TypeFileInfo, f.meta)
	ev.FileInfo = info
	e.emit(ev)
	if malicious {
		e.stats.FilesMalicious.Add(1)
		a := e.event(st, dir, alert.TypeAlert, f.meta)
		a.FileInfo = info
		a.Alert = &alert.Alert{
			Action: alert.ActionBlocked, GID: 1, SignatureID: sidAVHTTP, Rev: 1,
			Signature: "UTM AV malware in HTTP transfer: " + info.Threat,
			Category:  "Malware detected", Severity: 1,
		}
		a.Stars = 3
		a.Summary = "Blocked a malicious file (" + info.Threat + ") in an HTTP transfer; the transfer was cut"
		e.verdict(Reject)
		e.emit(a)
	}
	e.dropFile(f)
}
