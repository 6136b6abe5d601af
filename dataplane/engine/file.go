package engine

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"strings"
	"sync"

	"github.com/openutm/utm/dataplane/filetype"
	"github.com/openutm/utm/dataplane/http1"
	"github.com/openutm/utm/signatures/rules"
	"github.com/openutm/utm/telemetry/alert"
)

// fileState follows one file being transferred: an HTTP body, an upload's
// form part, a mail attachment or body part.
type fileState struct {
	active bool
	name   []byte
	meta   *reqMeta  // the HTTP request it belongs to; nil for mail
	mail   *mailMeta // the message it is part of; nil for HTTP
	quiet  bool      // a mail text body: reported only when malicious
	// unscannable says why the file could not be scanned (a decompression
	// bomb in its Content-Encoding or in an archive, an encrypted archive
	// member, an unsupported encoding); "" when it could.
	unscannable string
	rangeFrom   int64 // a partial response's first byte (Content-Range); 0: from the start
	expect      int64 // the size announced (Content-Length, no encoding); 0: unknown
	size        int64
	buf         *[]byte // bytes kept for scanning; nil when none
	overflow    bool    // more than MaxScanSize or the total budget
	gap         bool    // bytes of the transfer were never seen (stream gap)
	md5, sha1   hash.Hash
	sha256      hash.Hash
	sum         [sha256.Size]byte
}

// scanPool holds scan buffers up to 1 MiB; larger ones go to the GC.
var scanPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func (e *Engine) startFile(f *fileState, meta *reqMeta) {
	f.active = true
	f.meta = meta
	f.mail, f.quiet, f.unscannable, f.rangeFrom, f.expect = nil, false, "", 0, 0 // callers set them after
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
		if n := min(f.expect, int64(e.cfg.MaxScanSize)); n > 64<<10 && e.fileMem.Load()+n <= e.cfg.MaxScanTotal {
			// The size is announced: one buffer of it, no growing copies.
			b := make([]byte, 0, n)
			f.buf = &b
		} else {
			f.buf = scanPool.Get().(*[]byte)
			*f.buf = (*f.buf)[:0]
		}
		e.fileMem.Add(int64(cap(*f.buf)))
	}
	if len(*f.buf)+len(data) > e.cfg.MaxScanSize || e.fileMem.Load()+int64(len(data)) > e.cfg.MaxScanTotal {
		f.overflow = true
		return
	}
	before := cap(*f.buf)
	*f.buf = append(*f.buf, data...)
	e.fileMem.Add(int64(cap(*f.buf) - before))
}

// dropFile releases f's buffer without a verdict.
func (e *Engine) dropFile(f *fileState) {
	if f.buf != nil {
		e.fileMem.Add(-int64(cap(*f.buf)))
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
		info.Magic = filetype.Detect(data[:min(len(data), filetype.HeadSize)]).Name
	}
	if f.rangeFrom > 0 {
		// A Range response: a piece of a file; its start is elsewhere.
		info.State = "TRUNCATED"
	}
	if f.overflow || f.gap || f.rangeFrom > 0 {
		// Only the first MaxScanSize bytes were kept, or a stream gap cut
		// the transfer: scan what was kept, and say the rest went
		// unscanned.
		e.stats.FilesPartial.Add(1)
		info.Verdict = "partially-scanned"
	}
	malicious := false
	if len(data) > 0 && f.complete(complete) && e.blocked.Len() > 0 {
		// The same content was neutralised before: no second scan.
		e.keyBuf = append(append(e.keyBuf[:0], "sha256:"...), info.SHA256...)
		if bl, ok := e.blocked.lookup(e.keyBuf, e.now); ok {
			malicious, info.Verdict, info.Threat, info.Scanned = true, "malicious", bl.threat, true
		}
	}
	if f.unscannable != "" {
		info.Verdict = "unscannable"
	}
	if !malicious && b.AV != nil && len(data) > 0 {
		res := e.scan(b, data, info.Filename)
		info.Scanned = res.err == nil
		switch {
		case res.err != nil:
			e.stats.ScanErrors.Add(1)
			info.Verdict = "unscanned"
			e.log.Warn("file scan failed; the file was let through", "flow_id", st.f.ID, "file", info.Filename, "err", res.err)
		case res.malicious:
			malicious = true
			info.Verdict = "malicious"
			info.Threat = res.threat
		case res.unscannable != "":
			f.unscannable = res.unscannable
			info.Verdict = "unscannable"
		case res.partial:
			info.Verdict = "partially-scanned"
		}
	}
	if !malicious && (len(data) > 0 || f.size == 0) {
		// The file keywords (filename, fileext, filemagic, filesize,
		// filemd5/sha1/sha256) and, for HTTP, the body buffers.
		in := e.input(st, dir)
		e.fileFacts(f, info, complete)
		in.File = &e.facts
		in.Buf[rules.BufFileName] = f.name
		if f.mail == nil && len(data) > 0 {
			// The body rules see its first BodyInspectLimit bytes, as
			// Suricata's request/response-body-limit; the antivirus saw
			// all of it.
			body := data[:min(len(data), e.cfg.BodyInspectLimit)]
			if dir == 0 {
				in.Buf[rules.BufHTTPRequestBody] = body
			} else {
				in.Buf[rules.BufHTTPResponseBody] = body
			}
		}
		e.matchRules(b, st, in, f.meta)
	}
	if !f.quiet || malicious {
		ev := e.event(st, dir, alert.TypeFileInfo, f.meta)
		ev.FileInfo = info
		e.emit(ev)
	}
	if malicious {
		e.stats.FilesMalicious.Add(1)
		e.remember(f, info, dir)
		e.alertMalware(st, dir, f, info)
		e.verdict(Reject)
	} else if f.unscannable != "" {
		e.alertUnscannable(st, dir, f, info)
	}
	e.dropFile(f)
}

// fileFacts fills the engine's FileFacts for the file keywords from f.
func (e *Engine) fileFacts(f *fileState, info *alert.FileInfo, complete bool) {
	ff := &e.facts
	ff.Name, ff.Magic, ff.Size = info.Filename, info.Magic, uint64(f.size)
	ff.Ext = ""
	if i := strings.LastIndexByte(ff.Name, '.'); i >= 0 && i < len(ff.Name)-1 {
		ff.Ext = strings.ToLower(ff.Name[i+1:])
	}
	f.md5.Sum(ff.MD5[:0])
	f.sha1.Sum(ff.SHA1[:0])
	f.sha256.Sum(ff.SHA256[:0])
	ff.Complete = complete && !f.gap && f.rangeFrom == 0
}

// complete reports whether f holds the whole file: every byte seen and kept.
func (f *fileState) complete(ended bool) bool { return ended && !f.overflow && !f.gap }

// remember enters a neutralised file in the shared Blocked table: its URL
// when it was downloaded (dir 1: a later request for it gets the same file;
// an upload's URL is the form's, used for other files too) and its SHA-256
// when the whole file was seen.
func (e *Engine) remember(f *fileState, info *alert.FileInfo, dir int) {
	be := blockedEntry{threat: info.Threat, sha256: info.SHA256, expires: e.now.Add(BlockedTTL)}
	var url, sum string
	if dir == 1 && f.mail == nil && f.meta != nil && len(f.meta.uri) > 0 {
		u := http1.NormalizeURI(nil, f.meta.uri)
		url = string(urlKey(nil, f.meta.host, u))
	}
	if info.State == "CLOSED" && info.Verdict == "malicious" && info.Size > 0 && !f.overflow && !f.gap {
		sum = "sha256:" + info.SHA256
	}
	e.blocked.add(be, url, sum)
}

// alertMalware raises the ★★★ alert for a neutralised file. The packet
// being processed (the one completing the file, or the attachment's part)
// is rejected by the caller: the rest never arrives, both sides are reset.
func (e *Engine) alertMalware(st *flowState, dir int, f *fileState, info *alert.FileInfo) {
	a := e.event(st, dir, alert.TypeAlert, f.meta)
	a.FileInfo = info
	sid, proto := sidAVHTTP, "HTTP"
	var where, done string
	switch st.app {
	case appSMTP:
		sid, proto, where, done = sidAVMail, "SMTP", "a mail attachment", "the receiving server never accepted the message"
	case appPOP3:
		sid, proto, where, done = sidAVMail, "POP3", "a mail attachment", "the mail client never received the whole message"
	case appIMAP:
		sid, proto, where, done = sidAVMail, "IMAP", "a mail attachment", "the whole message never reached its destination"
	default:
		where, done = "an HTTP transfer", "the transfer was cut"
		if dir == 0 {
			where = "an HTTP upload"
		}
	}
	if f.mail != nil && st.app == appSMTP && dir == 1 {
		done = "the transfer was cut"
	}
	a.Alert = &alert.Alert{
		Action: alert.ActionBlocked, GID: 1, SignatureID: sid, Rev: 1,
		Signature: "UTM AV malware in " + proto + " transfer: " + info.Threat,
		Category:  "Malware detected", Severity: 1,
	}
	if sid == sidAVMail {
		a.Alert.Signature = "UTM AV malware in mail attachment (" + proto + "): " + info.Threat
	}
	a.Stars = 3
	a.Summary = "Blocked a malicious file (" + info.Threat + ") in " + where + "; " + done
	e.emit(a)
}

// alertUnscannable raises the ★★ "unscannable" alert for a file the
// antivirus could not look into, and applies Config.BlockUnscannable.
func (e *Engine) alertUnscannable(st *flowState, dir int, f *fileState, info *alert.FileInfo) {
	e.stats.FilesUnscannable.Add(1)
	action, done := alert.ActionAllowed, "it was let through (engine policy: allow unscannable files)"
	if e.cfg.BlockUnscannable {
		action, done = alert.ActionBlocked, "it was blocked (engine policy: block unscannable files)"
		e.verdict(Reject)
	}
	a := e.event(st, dir, alert.TypeAlert, f.meta)
	a.FileInfo = info
	a.Alert = &alert.Alert{
		Action: action, GID: 1, SignatureID: sidAVUnscan, Rev: 1,
		Signature: "UTM AV unscannable file: " + f.unscannable,
		Category:  "Potentially Bad Traffic", Severity: 2,
	}
	a.Stars = 2
	name := info.Filename
	if name == "" {
		name = "a file"
	}
	a.Summary = "Could not scan " + name + " (" + f.unscannable + "); " + done
	e.emit(a)
}

// alertBlockedRetry refuses a request for a URL whose file was neutralised
// earlier (a Range resume, a retry, another client): reset both sides
// before the server answers.
func (e *Engine) alertBlockedRetry(st *flowState, m *reqMeta, b blockedEntry) {
	e.stats.FilesRetryBlocked.Add(1)
	e.verdict(Reject)
	if st.alertedOnce(sidAVRetry) {
		return
	}
	a := e.event(st, 0, alert.TypeAlert, m)
	a.FileInfo = &alert.FileInfo{SHA256: b.sha256, Threat: b.threat, Verdict: "malicious"}
	a.Alert = &alert.Alert{
		Action: alert.ActionBlocked, GID: 1, SignatureID: sidAVRetry, Rev: 1,
		Signature: "UTM AV request for a file blocked earlier: " + b.threat,
		Category:  "Malware detected", Severity: 1,
	}
	a.Stars = 2
	a.Summary = "Refused a request for a file neutralised earlier (" + b.threat + "): a resume or retry of a blocked download; the connection was reset"
	e.emit(a)
}
