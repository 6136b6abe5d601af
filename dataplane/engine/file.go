package engine

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"log/slog"
	"math/bits"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/openutm/utm/dataplane/filetype"
	"github.com/openutm/utm/dataplane/http1"
	"github.com/openutm/utm/signatures/av"
	"github.com/openutm/utm/signatures/rules"
	"github.com/openutm/utm/telemetry/alert"
)

// fileState follows one file being transferred: an HTTP body, an upload's
// form part, a mail attachment or body part.
type fileState struct {
	active bool
	name   []byte
	meta   *reqMeta  // the HTTP request it belongs to (req); nil for mail
	req    reqMeta   // meta's copy: the connection's request queue reuses its slots (an answer to an upload still in transfer swaps them)
	mail   *mailMeta // the message it is part of; nil for HTTP
	quiet  bool      // a mail text body: reported only when malicious
	// unscannable says why the file could not be scanned (a decompression
	// bomb in its Content-Encoding or in an archive, an encrypted archive
	// member, an unsupported encoding); "" when it could.
	unscannable string
	rangeFrom   int64 // a partial response's first byte (Content-Range); 0: from the start
	expect      int64 // the size announced (Content-Length, no encoding); 0: unknown
	size        int64
	buf         *[]byte // bytes kept for scanning (Engine.takeBuf); nil when none
	overflow    bool    // more than MaxScanSize or the total budget
	gap         bool    // bytes of the transfer were never seen (stream gap)
	// SHA-256 always; MD5 and SHA-1 only when something reads them
	// (Engine.fileDigests): md5On, sha1On for this file.
	sha256    hash.Hash
	md5, sha1 hash.Hash // made at the first file that needs them
	md5On     bool
	sha1On    bool
	// The SHA-256 of the kept bytes runs on the engine's helper
	// goroutine, from buf in hashChunk steps (hashedTo: handed over so
	// far), the rest at the end beside the scan; sha256First: a hash list
	// needs it before the scan.
	hashedTo    int
	sha256First bool
	hashPending bool              // the helper has bytes of this file to hash (hashAsync)
	sha256Sum   [sha256.Size]byte // the digests, set by sums when the file ends
	md5Sum      [md5.Size]byte
	sha1Sum     [sha1.Size]byte
}

func (e *Engine) startFile(f *fileState, meta *reqMeta) {
	f.active = true
	f.meta = nil
	if meta != nil {
		f.req.copyFrom(meta)
		f.meta = &f.req
	}
	f.mail, f.quiet, f.unscannable, f.rangeFrom, f.expect = nil, false, "", 0, 0 // callers set them after
	f.size = 0
	f.overflow, f.gap = false, false
	if f.sha256 == nil {
		f.sha256 = sha256.New()
	} else {
		f.sha256.Reset()
	}
	var early bool
	f.md5On, f.sha1On, early = e.fileDigests()
	f.sha256First, f.hashedTo = early, 0
	if f.md5On {
		if f.md5 == nil {
			f.md5 = md5.New()
		} else {
			f.md5.Reset()
		}
	}
	if f.sha1On {
		if f.sha1 == nil {
			f.sha1 = sha1.New()
		} else {
			f.sha1.Reset()
		}
	}
	e.stats.Files.Add(1)
}

// fileDigests says whether files starting now get an MD5 and a SHA-1
// besides their SHA-256: Config.FileMD5/FileSHA1, a rule using filemd5 /
// filesha1, or a hash list of that kind for files of any size (the AV then
// takes the engine's digest instead of hashing the file again); and
// whether the SHA-256 must be ready before the scan (a SHA-256 list for
// files of any size) rather than computed beside it. Worked out once per
// bundle.
func (e *Engine) fileDigests() (md5, sha1, sha256Early bool) {
	b := e.pb
	if b != e.digests.b || b.Rules != e.digests.rules || b.AV != e.digests.av {
		d := &e.digests
		d.b, d.rules, d.av = b, b.Rules, b.AV
		d.md5, d.sha1, d.ruleSHA256 = b.Rules.FileDigests()
		d.sha256 = false
		if b.AV != nil {
			m, s1, s256 := b.AV.HashKinds()
			d.md5, d.sha1, d.sha256 = d.md5 || m, d.sha1 || s1, s256
		}
	}
	return e.cfg.FileMD5 || e.digests.md5, e.cfg.FileSHA1 || e.digests.sha1, e.digests.sha256
}

// sums finishes f's digests into f.sha256Sum (unless its report waits
// for it: deferred) and md5Sum, sha1Sum when computed.
func (f *fileState) sums(deferred bool) {
	if deferred {
		f.sha256Sum = [sha256.Size]byte{}
	} else {
		f.sha256.Sum(f.sha256Sum[:0])
	}
	if f.md5On {
		f.md5.Sum(f.md5Sum[:0])
	}
	if f.sha1On {
		f.sha1.Sum(f.sha1Sum[:0])
	}
}

func (e *Engine) fileData(f *fileState, data []byte) {
	f.size += int64(len(data))
	if f.md5On {
		f.md5.Write(data)
	}
	if f.sha1On {
		f.sha1.Write(data)
	}
	if f.overflow {
		e.hashAsync(f, data, true) // no longer kept: hashed on the helper
		return
	}
	if f.buf == nil {
		if n := min(f.expect, int64(e.cfg.MaxScanSize)); n > fileBufMin {
			// The size is announced: one buffer of it, no growing copies.
			f.buf = e.takeBuf(int(n))
		}
		if f.buf == nil {
			f.buf = e.takeBuf(fileBufMin)
		}
		if f.buf == nil {
			e.fileOverflow(f, data) // the box's file memory is spent
			return
		}
	}
	b := *f.buf
	if len(b)+len(data) > e.cfg.MaxScanSize {
		e.fileOverflow(f, data)
		return
	}
	if len(b)+len(data) > cap(b) {
		nb := e.takeBuf(min(max(2*cap(b), len(b)+len(data)), e.cfg.MaxScanSize))
		if nb == nil {
			e.fileOverflow(f, data)
			return
		}
		*nb = append((*nb)[:0], b...)
		e.hashWait(f) // the helper may be reading the old buffer
		e.putBuf(f.buf)
		f.buf = nb
		b = *nb
	}
	*f.buf = append(b, data...)
	if n := len(*f.buf); n-f.hashedTo >= hashChunk {
		// Kept bytes never change: the helper hashes them in place.
		e.hashAsync(f, (*f.buf)[f.hashedTo:n], false)
		f.hashedTo = n
	}
}

// fileOverflow marks f as kept no further: data and the bytes after it are
// hashed (on the helper), not kept. A SHA-256 left for the end catches up
// on what was kept (the buffer no longer changes) and data; a streamed one
// has hashed data already.
func (e *Engine) fileOverflow(f *fileState, data []byte) {
	f.overflow = true
	if f.buf != nil && len(*f.buf) > f.hashedTo {
		e.hashAsync(f, (*f.buf)[f.hashedTo:], false)
		f.hashedTo = len(*f.buf)
	}
	e.hashAsync(f, data, true)
}

// dropFile releases f's buffer without a verdict.
func (e *Engine) dropFile(f *fileState) {
	e.hashWait(f) // the helper may still read the buffer
	if f.buf != nil {
		e.putBuf(f.buf)
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
	name := string(f.name)
	// scanned is the AV's verdict when it ran beside the SHA-256.
	var scanned *scanResult
	if tail := data[min(f.hashedTo, len(data)):]; f.overflow {
		// hashed already (fileOverflow, fileData)
	} else if f.hashPending || len(tail) >= lateHashParallel {
		e.hashAsync(f, tail, false)
	} else {
		f.sha256.Write(tail) // a small file: no hand-over
	}
	f.hashedTo = len(data)
	// A file kept whole whose SHA-256 a list needs waits for the digest
	// before its scan; otherwise the scan runs while the helper finishes.
	first := f.sha256First && !f.overflow
	if f.hashPending && !first && b.AV != nil && len(data) > 0 {
		res := e.scan(b, data, name, f.avSums(data, false))
		scanned = &res
	}
	// The packet goes on without the digest when nothing deciding its
	// verdict reads it; the report follows when the helper is done.
	deferred := f.hashPending && !first && e.mayDefer(f, data, complete, scanned)
	if !deferred {
		e.hashWait(f)
	}
	f.sums(deferred)
	info := &alert.FileInfo{
		Filename: name,
		Size:     f.size,
		State:    "CLOSED",
		Verdict:  "clean",
	}
	if !deferred {
		info.SHA256 = hex.EncodeToString(f.sha256Sum[:])
	}
	if f.md5On {
		info.MD5 = hex.EncodeToString(f.md5Sum[:])
	}
	if f.sha1On {
		info.SHA1 = hex.EncodeToString(f.sha1Sum[:])
	}
	if !complete {
		info.State = "TRUNCATED"
	}
	if len(data) > 0 {
		info.Magic = filetype.DetectFile(data).Name
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
		var res scanResult
		if scanned != nil {
			res = *scanned
		} else {
			res = e.scan(b, data, info.Filename, f.avSums(data, true))
		}
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
	var ev *alert.Event
	if !f.quiet || malicious {
		ev = e.event(st, dir, alert.TypeFileInfo, f.meta)
		ev.FileInfo = info
	}
	switch {
	case deferred:
		e.deferReport(f, ev)
	case ev != nil && len(e.reports) > 0:
		e.queueReport(ev) // after the reports still waiting: in order
	case ev != nil:
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

// lateHashParallel is the smallest rest of a file whose SHA-256 the
// helper finishes beside the scan (below it the hand-over costs more than
// it saves).
const lateHashParallel = 64 << 10

// Deferred file reports. A file whose SHA-256 the helper is still
// computing when the file ends does not hold its last packet for it when
// nothing that decides the verdict reads the digest: no hash list needs
// it before the scan, no rule compares it (filesha256), no neutralised
// file is remembered by it (the Blocked table is empty), and the scan
// found nothing (a malicious or unscannable file is reported at once,
// digest included: its alert and the Blocked table need it). The
// fileinfo event is built at the file's end (its time, flow and verdict
// are the end's) and sent once the digest is in, at the latest at the
// first packet reportDelay after the end (the worker waits for the helper
// then, if it must), when maxReports wait already, when the file memory
// runs short, when the queue is idle (Engine.Idle) and at Close. Packet
// times decide, never the helper's speed, so a replay gives the same
// output every time.
const (
	reportDelay = 5 * time.Millisecond
	maxReports  = 4
)

// fileReport is a file's fileinfo event waiting for its SHA-256, or
// (h nil) one with its digest queued behind such reports.
type fileReport struct {
	ev  *alert.Event // nil: a quiet file, only its buffer to release
	h   hash.Hash    // the file's SHA-256, complete once the helper passed job seq
	buf *[]byte      // the kept bytes the helper may still read
	seq uint64
	due time.Time
}

// mayDefer reports whether f's report may wait for its SHA-256 (see
// fileReport): the scan beside the helper ran (scanned) and found f
// clean, and nothing else reads the digest.
func (e *Engine) mayDefer(f *fileState, data []byte, complete bool, scanned *scanResult) bool {
	e.fileDigests() // the current bundle's (it may have been swapped since the file started)
	if f.unscannable != "" || e.digests.ruleSHA256 {
		return false
	}
	if len(data) > 0 {
		if e.pb.AV != nil && (scanned == nil || scanned.malicious || scanned.unscannable != "") {
			return false
		}
		if f.complete(complete) && e.blocked.Len() > 0 {
			return false
		}
	}
	return true
}

// deferReport hands f's SHA-256 and buffer to a report sent later (see
// fileReport); f gets a fresh hash and no buffer.
func (e *Engine) deferReport(f *fileState, ev *alert.Event) {
	if len(e.reports) >= maxReports {
		e.sendReports(time.Time{}, true, 1)
	}
	if e.hasher.stageOf == f {
		e.flushHash()
	}
	e.reports = append(e.reports, fileReport{ev: ev, h: f.sha256, buf: f.buf, seq: e.hasher.sent, due: e.now.Add(reportDelay)})
	e.stats.FileReportsDeferred.Add(1)
	f.sha256, f.buf, f.hashPending = nil, nil, false
	if n := len(e.spareSHA); n > 0 {
		f.sha256, e.spareSHA = e.spareSHA[n-1], e.spareSHA[:n-1]
		f.sha256.Reset()
	} else {
		f.sha256 = sha256.New()
	}
}

// queueReport queues a fileinfo event that has its digest behind the
// reports still waiting for theirs, so a flow's files are reported in the
// order they ended.
func (e *Engine) queueReport(ev *alert.Event) {
	if len(e.reports) >= maxReports {
		e.sendReports(time.Time{}, true, 1)
	}
	e.reports = append(e.reports, fileReport{ev: ev, due: e.now.Add(reportDelay)})
}

// sendReports sends the deferred reports due at now (all of them, up to
// n, when force), oldest first, waiting for the helper where it has not
// finished one.
func (e *Engine) sendReports(now time.Time, force bool, n int) {
	sent := 0
	for len(e.reports) > 0 && (sent < n || n <= 0) {
		r := &e.reports[0]
		if !force && now.Before(r.due) {
			return
		}
		if e.hasher.done.Load() < r.seq {
			e.stats.FileReportWaits.Add(1)
			e.hashUntil(r.seq)
		}
		if r.ev != nil && r.h != nil {
			var sum [sha256.Size]byte
			r.ev.FileInfo.SHA256 = hex.EncodeToString(r.h.Sum(sum[:0]))
		}
		if r.ev != nil {
			e.emit(r.ev)
		}
		if r.buf != nil {
			e.putBuf(r.buf)
		}
		if r.h != nil {
			e.spareSHA = append(e.spareSHA, r.h)
		}
		*r = fileReport{}
		e.reports = append(e.reports[:0], e.reports[1:]...)
		sent++
	}
}

// avSums are the digests of data the AV can take from f: those computed
// (with the SHA-256 when withSHA256), when data is the whole transfer.
func (f *fileState) avSums(data []byte, withSHA256 bool) av.Sums {
	var sums av.Sums
	if int64(len(data)) != f.size {
		return sums
	}
	if withSHA256 {
		sums.SHA256 = &f.sha256Sum
	}
	if f.md5On {
		f.md5.Sum(f.md5Sum[:0])
		sums.MD5 = &f.md5Sum
	}
	if f.sha1On {
		f.sha1.Sum(f.sha1Sum[:0])
		sums.SHA1 = &f.sha1Sum
	}
	return sums
}

// fileFacts fills the engine's FileFacts for the file keywords from f.
func (e *Engine) fileFacts(f *fileState, info *alert.FileInfo, complete bool) {
	ff := &e.facts
	ff.Name, ff.Magic, ff.Size = info.Filename, info.Magic, uint64(f.size)
	ff.Ext = ""
	if i := strings.LastIndexByte(ff.Name, '.'); i >= 0 && i < len(ff.Name)-1 {
		ff.Ext = strings.ToLower(ff.Name[i+1:])
	}
	// A digest not computed is zero: no rule reads it (fileDigests), unless
	// a bundle swapped in while the file streamed added one.
	ff.MD5, ff.SHA1, ff.SHA256 = [16]byte{}, [20]byte{}, f.sha256Sum
	if f.md5On {
		ff.MD5 = f.md5Sum
	}
	if f.sha1On {
		ff.SHA1 = f.sha1Sum
	}
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
	cut := false // done says the transfer was cut
	switch st.app {
	case appSMTP:
		sid, proto, where, done = sidAVMail, "SMTP", "a mail attachment", "the receiving server never accepted the message"
	case appPOP3:
		sid, proto, where, done = sidAVMail, "POP3", "a mail attachment", "the mail client never received the whole message"
	case appIMAP:
		sid, proto, where, done = sidAVMail, "IMAP", "a mail attachment", "the whole message never reached its destination"
	default:
		where, done, cut = "an HTTP transfer", "the transfer was cut", true
		if dir == 0 {
			where = "an HTTP upload"
		}
	}
	if f.mail != nil && st.app == appSMTP && dir == 1 {
		done, cut = "the transfer was cut", true
	}
	action, verb := e.action(Reject), "Blocked"
	if action == alert.ActionAllowed {
		// Found as the flow was released (a timeout, an eviction): its
		// last packet has passed, there is nothing left to hold. A mail
		// message cut short was still never delivered whole.
		verb = "Found"
		if cut {
			done = "it was found when the connection ended, after its last packet had passed: check the receiving host"
		}
	}
	a.Alert = &alert.Alert{
		Action: action, GID: 1, SignatureID: sid, Rev: 1,
		Signature: "UTM AV malware in " + proto + " transfer: " + info.Threat,
		Category:  "Malware detected", Severity: 1,
	}
	if sid == sidAVMail {
		a.Alert.Signature = "UTM AV malware in mail attachment (" + proto + "): " + info.Threat
	}
	a.Stars = 3
	a.Summary = verb + " a malicious file (" + info.Threat + ") in " + where + "; " + done
	e.emit(a)
}

// alertUnscannable raises the ★★ "unscannable" alert for a file the
// antivirus could not look into, and applies Config.BlockUnscannable.
func (e *Engine) alertUnscannable(st *flowState, dir int, f *fileState, info *alert.FileInfo) {
	e.stats.FilesUnscannable.Add(1)
	action, done := alert.ActionAllowed, "it was let through (engine policy: allow unscannable files)"
	if e.cfg.BlockUnscannable {
		e.verdict(Reject)
		action, done = e.action(Reject), "it was blocked (engine policy: block unscannable files)"
		if action == alert.ActionAllowed {
			done = "it was found when the connection ended, after its last packet had passed"
		}
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
	act := e.action(Reject)
	a.Alert = &alert.Alert{
		Action: act, GID: 1, SignatureID: sidAVRetry, Rev: 1,
		Signature: "UTM AV request for a file blocked earlier: " + b.threat,
		Category:  "Malware detected", Severity: 1,
	}
	a.Stars = 2
	a.Summary = "Refused a request for a file neutralised earlier (" + b.threat + "): a resume or retry of a blocked download; the connection was reset"
	if act != alert.ActionBlocked { // seen only when the flow was released: it has passed
		a.Summary = "Found a request for a file neutralised earlier (" + b.threat + ") when the connection ended: a resume or retry of a blocked download; check the requesting host"
	}
	e.emit(a)
}

// File buffers. Each Engine keeps the buffers of files that ended on a
// short free list, so a worker serving one download after another neither
// allocates nor clears a buffer per file. Idle buffers stay counted in
// FileMemory: MaxScanTotal bounds the bytes kept and idle together. An
// engine drops its own idle buffers (oldest first) when a file needs room
// the budget no longer has, and all of them after fileBufIdle without a
// file ending; at most MaxScanTotal/16 of idle bytes and fileBufKeep
// buffers per engine.
const (
	fileBufMin  = 64 << 10 // a file of unknown size starts with this much
	fileBufKeep = 8
	fileBufIdle = time.Minute
)

type fileBufs struct {
	free    []*[]byte // oldest first
	idle    int64     // bytes in free
	lastPut time.Time
}

// fileBufSize rounds n up to a size class (steps of 1/8 of a power of two
// above fileBufMin), so files of nearly the same size share buffers; it
// stays within max(n, limit).
func fileBufSize(n, limit int) int {
	if n <= fileBufMin {
		return fileBufMin
	}
	step := 1 << max(bits.Len(uint(n-1))-4, 0)
	c := (n + step - 1) &^ (step - 1)
	return max(n, min(c, limit))
}

// takeBuf returns an empty buffer of at least n bytes: the smallest idle
// one that fits, else a new one if the box's file memory has room (after
// dropping this engine's idle buffers if need be), else nil.
func (e *Engine) takeBuf(n int) *[]byte {
	fb := &e.bufs
	best := -1
	for i, b := range fb.free {
		if cap(*b) >= n && (best < 0 || cap(*b) < cap(*fb.free[best])) {
			best = i
		}
	}
	if best >= 0 {
		b := fb.free[best]
		fb.free = append(fb.free[:best], fb.free[best+1:]...)
		fb.idle -= int64(cap(*b))
		*b = (*b)[:0]
		return b
	}
	c := int64(fileBufSize(n, e.cfg.MaxScanSize))
	if e.fileMem.Load()+c > e.cfg.MaxScanTotal && len(e.reports) > 0 {
		// Reports waiting for their SHA-256 hold buffers: send them.
		e.sendReports(time.Time{}, true, 0)
		return e.takeBuf(n)
	}
	for e.fileMem.Load()+c > e.cfg.MaxScanTotal && len(fb.free) > 0 {
		e.dropIdle(1)
	}
	if e.fileMem.Load()+c > e.cfg.MaxScanTotal {
		return nil
	}
	b := make([]byte, 0, c)
	e.fileMem.Add(c)
	return &b
}

// putBuf keeps b for a later file, dropping the oldest idle buffers over
// the per-engine limits.
func (e *Engine) putBuf(b *[]byte) {
	fb := &e.bufs
	fb.free = append(fb.free, b)
	fb.idle += int64(cap(*b))
	fb.lastPut = e.now
	for len(fb.free) > fileBufKeep || fb.idle > e.cfg.MaxScanTotal/16 {
		e.dropIdle(1)
	}
}

// dropIdle lets the GC have the n oldest idle buffers.
func (e *Engine) dropIdle(n int) {
	fb := &e.bufs
	n = min(n, len(fb.free))
	for i, b := range fb.free[:n] {
		fb.idle -= int64(cap(*b))
		e.fileMem.Add(-int64(cap(*b)))
		fb.free[i] = nil
	}
	fb.free = append(fb.free[:0], fb.free[n:]...)
	clear(fb.free[len(fb.free):cap(fb.free)])
}

// expireBufs drops every idle buffer once no file has ended for
// fileBufIdle, so a quiet worker gives its memory back.
func (e *Engine) expireBufs(now time.Time) {
	if fb := &e.bufs; len(fb.free) > 0 && now.Sub(fb.lastPut) >= fileBufIdle {
		e.dropIdle(len(fb.free))
	}
}

// The hashing helper: one goroutine per engine runs the SHA-256 of files
// so the worker does not. Kept bytes are handed over in place, in
// hashChunk steps as the buffer fills (appended bytes never change; the
// buffer is not released or regrown before hashWait), and the rest at
// the file's end, where the helper finishes while the worker scans. Bytes
// past what is kept (MaxScanSize, the file memory) are copied in
// hashChunk pieces, at most hashChunks of them in flight (the worker
// waits for one to come back), so the worker's cost per byte is a copy. A
// file's end and the release of its buffer wait for its last bytes
// (hashWait). The helper never blocks; Close stops it. A small file
// (under lateHashParallel) is hashed inline at its end: no hand-over.
const (
	hashChunk  = 64 << 10
	hashChunks = 8
)

type hasher struct {
	jobs    chan hashJob
	free    chan *[]byte
	synced  chan struct{}
	stage   *[]byte    // bytes of stageOf being gathered into a piece
	stageOf *fileState // whose
	sent    uint64     // jobs handed to the helper
	// done counts the jobs the helper finished (jobs run in order); on
	// its own cache lines, the helper writes it. want, when not 0, asks
	// the helper for a signal on synced once done reaches it.
	done *hashCount
	want *hashCount
}

type hashCount struct {
	_ [64]byte
	atomic.Uint64
	_ [56]byte
}

type hashJob struct {
	h    hash.Hash
	data []byte
	buf  *[]byte // the piece data is in, back to free once hashed; nil: a file's own buffer
	sync bool    // answer on synced once everything before is hashed
}

func hashLoop(log *slog.Logger, jobs <-chan hashJob, free chan<- *[]byte, synced chan<- struct{}, done, want *hashCount) {
	// Hashing gives way to the traffic: the helper's thread runs at the
	// lowest priority, on CPU time the engine, the kernel's forwarding and
	// the office's other work leave over. Nothing waits for it but the
	// reports (and, when a file's verdict needs the digest, the worker,
	// which then sleeps and leaves it the CPU), so it cannot starve for
	// long. The thread stays the helper's (locked) and ends with it.
	runtime.LockOSThread()
	if err := lowerThreadPriority(); err != nil {
		log.Warn("engine: cannot lower the SHA-256 helper's priority; file hashing competes with inspection for CPU", "err", err)
	}
	for j := range jobs {
		if j.h != nil {
			j.h.Write(j.data)
		}
		if j.buf != nil {
			*j.buf = (*j.buf)[:0]
			free <- j.buf
		}
		n := done.Add(1)
		if j.sync {
			synced <- struct{}{}
		} else if w := want.Load(); w != 0 && n >= w && want.CompareAndSwap(w, 0) {
			synced <- struct{}{}
		}
	}
}

// hashAsync has the helper add data to f's SHA-256: a copy of it (copy:
// data is the packet's) or data itself (a buffer that stays unchanged
// until hashWait).
func (e *Engine) hashAsync(f *fileState, data []byte, copy bool) {
	hs := &e.hasher
	if hs.jobs == nil {
		hs.jobs = make(chan hashJob, 2*hashChunks)
		hs.free = make(chan *[]byte, hashChunks)
		hs.synced = make(chan struct{}, 1)
		hs.done, hs.want = new(hashCount), new(hashCount)
		for range hashChunks {
			b := make([]byte, 0, hashChunk)
			hs.free <- &b
		}
		go hashLoop(e.log, hs.jobs, hs.free, hs.synced, hs.done, hs.want)
	}
	f.hashPending = true
	if !copy {
		if hs.stageOf == f {
			e.flushHash()
		}
		hs.sent++
		hs.jobs <- hashJob{h: f.sha256, data: data}
		return
	}
	for len(data) > 0 {
		if hs.stage != nil && hs.stageOf != f {
			e.flushHash()
		}
		if hs.stage == nil {
			hs.stage, hs.stageOf = <-hs.free, f
		}
		n := min(len(data), cap(*hs.stage)-len(*hs.stage))
		*hs.stage = append(*hs.stage, data[:n]...)
		data = data[n:]
		if len(*hs.stage) == cap(*hs.stage) {
			e.flushHash()
		}
	}
}

// flushHash sends the piece being gathered.
func (e *Engine) flushHash() {
	hs := &e.hasher
	if hs.stage != nil {
		hs.sent++
		hs.jobs <- hashJob{h: hs.stageOf.sha256, data: *hs.stage, buf: hs.stage}
		hs.stage, hs.stageOf = nil, nil
	}
}

// hashWait returns once the helper has hashed everything given for f.
func (e *Engine) hashWait(f *fileState) {
	if !f.hashPending {
		return
	}
	if e.hasher.stageOf == f {
		e.flushHash()
	}
	e.hashSync()
	f.hashPending = false
}

// hashUntil returns once the helper has done its first seq jobs (not
// those handed to it after: the files still streaming).
func (e *Engine) hashUntil(seq uint64) {
	hs := &e.hasher
	if hs.done.Load() >= seq {
		return
	}
	hs.want.Store(seq)
	// The helper may have passed seq before it saw want: whoever clears
	// want first decides whether a signal comes.
	if hs.done.Load() >= seq && hs.want.CompareAndSwap(seq, 0) {
		return
	}
	<-hs.synced
}

// hashSync returns once the helper has done every job handed to it.
func (e *Engine) hashSync() {
	hs := &e.hasher
	hs.sent++
	hs.jobs <- hashJob{sync: true}
	<-hs.synced
}

// stopHasher ends the helper goroutine (Close, after every file ended).
func (e *Engine) stopHasher() {
	if hs := &e.hasher; hs.jobs != nil {
		e.flushHash()
		close(hs.jobs)
		*hs = hasher{}
	}
}
