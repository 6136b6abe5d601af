package engine

import (
	"sync/atomic"

	"github.com/openutm/utm/dataplane/packet"
	"github.com/openutm/utm/signatures/pcre"
	"github.com/openutm/utm/signatures/rules"
)

// Stats counts what the engine saw and did. Fields are updated on the packet
// path and may be read from any goroutine.
type Stats struct {
	Packets, Bytes                      atomic.Uint64
	Accepted, Dropped, Rejected         atomic.Uint64
	Bypassed                            atomic.Uint64 // Bypass verdicts (also counted in Accepted)
	Malformed, Truncated, Unsupported   atomic.Uint64
	Fragments                           atomic.Uint64
	Frag                                FragStats // fragment reassembly (fragment.go)
	Flows, FlowsBlocked, FlowTableFull  atomic.Uint64
	Midstream, StreamOverflow           atomic.Uint64
	Stream                              StreamStats // reassembly evasion and bypass (evasion.go)
	TLS                                 TLSStats    // handshake parsing (tls.go)
	QUIC                                QUICStats   // QUIC handshakes (quic.go)
	HTTPRequests, DNSQueries            atomic.Uint64
	HTTPTunnels                         atomic.Uint64 // CONNECT tunnels and Upgrades: inspected as what they carry
	DNSMalformed                        atomic.Uint64
	DNSTCPOversize                      atomic.Uint64 // DNS messages over TCP longer than dnsTCPMax: passed uninspected
	DNSBlocked                          atomic.Uint64 // queries for listed domains answered by the box
	Files, FilesMalicious, FilesPartial atomic.Uint64
	FilesRetryBlocked                   atomic.Uint64 // requests for a URL neutralised earlier (blocked.go)
	FileReportsDeferred                 atomic.Uint64 // clean files released before their SHA-256 was in (file.go)
	FileReportWaits                     atomic.Uint64 // deferred reports that had to wait for the SHA-256 helper
	Mail                                MailStats     // SMTP, POP3, IMAP (mail.go)
	Beacons, DGABursts, Incidents       atomic.Uint64 // heuristics.go
	FilesUnscannable                    atomic.Uint64 // files the AV could not look into (bombs, encrypted)
	ArchiveMembers, ArchiveBombs        atomic.Uint64 // members scanned; containers over a limit
	ArchiveEncrypted                    atomic.Uint64 // containers with encrypted members
	DecodeErrors                        atomic.Uint64 // Content-Encoding bodies corrupt or over a limit
	ScanErrors, ResetErrors             atomic.Uint64
	LearnedFull                         atomic.Uint64
	Alerts                              atomic.Uint64
	AlertsByStars                       [4]atomic.Uint64
}

// MailStats counts mail sessions and messages.
type MailStats struct {
	Sessions      atomic.Uint64 // SMTP, POP3 and IMAP connections recognised
	Messages      atomic.Uint64 // messages extracted
	Truncated     atomic.Uint64 // messages that ended before their end (connection closed, gap)
	StartTLS      atomic.Uint64 // sessions that switched to TLS: their messages are not scanned
	Broken        atomic.Uint64 // sessions whose bytes stopped following the protocol
	Anomalies     atomic.Uint64 // protocol anomalies (long lines, unanswered commands, ...)
	MIMEAnomalies atomic.Uint64 // MIME anomalies (bad base64, missing boundary, limits)
}

func (s *Stats) countMalformed(r packet.Result) {
	switch r {
	case packet.Truncated:
		s.Truncated.Add(1)
	case packet.Unsupported:
		s.Unsupported.Add(1)
	default:
		s.Malformed.Add(1)
	}
}

func (s *Stats) alertStars(n int) {
	if n >= 1 && n <= 3 {
		s.AlertsByStars[n].Add(1)
	}
}

// Stats returns the engine's counters.
func (e *Engine) Stats() *Stats { return &e.stats }

// Counters returns the counters by name, for heartbeats and metrics.
func (e *Engine) Counters() map[string]uint64 {
	s := &e.stats
	return map[string]uint64{
		"packets":               s.Packets.Load(),
		"bypassed":              s.Bypassed.Load(),
		"bytes":                 s.Bytes.Load(),
		"accepted":              s.Accepted.Load(),
		"dropped":               s.Dropped.Load(),
		"rejected":              s.Rejected.Load(),
		"malformed":             s.Malformed.Load(),
		"truncated":             s.Truncated.Load(),
		"unsupported":           s.Unsupported.Load(),
		"fragments":             s.Fragments.Load(),
		"reassembled":           s.Frag.Reassembled.Load(),
		"frag_timeouts":         s.Frag.Timeouts.Load(),
		"frag_overlaps":         s.Frag.Overlaps.Load(),
		"frag_conflicts":        s.Frag.Conflicts.Load(),
		"frag_drop_cap":         s.Frag.DroppedCap.Load(),
		"frag_drop_bad":         s.Frag.DroppedBad.Load(),
		"flows":                 s.Flows.Load(),
		"flows_blocked":         s.FlowsBlocked.Load(),
		"flow_table_full":       s.FlowTableFull.Load(),
		"midstream":             s.Midstream.Load(),
		"stream_overflow":       s.StreamOverflow.Load(),
		"http_requests":         s.HTTPRequests.Load(),
		"http_tunnels":          s.HTTPTunnels.Load(),
		"dns_queries":           s.DNSQueries.Load(),
		"dns_malformed":         s.DNSMalformed.Load(),
		"dns_tcp_oversize":      s.DNSTCPOversize.Load(),
		"files":                 s.Files.Load(),
		"files_malicious":       s.FilesMalicious.Load(),
		"files_partial":         s.FilesPartial.Load(),
		"files_retry_blocked":   s.FilesRetryBlocked.Load(),
		"files_unscannable":     s.FilesUnscannable.Load(),
		"file_reports_deferred": s.FileReportsDeferred.Load(),
		"file_report_waits":     s.FileReportWaits.Load(),
		"beacons":               s.Beacons.Load(),
		"dga_bursts":            s.DGABursts.Load(),
		"incidents":             s.Incidents.Load(),
		"file_memory_bytes":     uint64(max(e.fileMem.Load(), 0)), // gauge: file buffers in use and idle, box-wide when shared
		"prefilter_errors":      rules.PrefilterErrors(),          // process-wide
		"pcre_limit_hits":       pcre.LimitHits(),                 // process-wide: a pcre gave up at its match limit (counted as no match)
		"pcre_errors":           pcre.MatchErrors(),               // process-wide
		"archive_members":       s.ArchiveMembers.Load(),
		"archive_bombs":         s.ArchiveBombs.Load(),
		"archive_encrypted":     s.ArchiveEncrypted.Load(),
		"decode_errors":         s.DecodeErrors.Load(),
		"mail_sessions":         s.Mail.Sessions.Load(),
		"mail_messages":         s.Mail.Messages.Load(),
		"mail_truncated":        s.Mail.Truncated.Load(),
		"mail_starttls":         s.Mail.StartTLS.Load(),
		"mail_broken":           s.Mail.Broken.Load(),
		"mail_anomalies":        s.Mail.Anomalies.Load(),
		"mime_anomalies":        s.Mail.MIMEAnomalies.Load(),
		"scan_errors":           s.ScanErrors.Load(),
		"reset_errors":          s.ResetErrors.Load(),
		"alerts":                s.Alerts.Load(),
		"threshold_entries":     uint64(e.tracker.Stats().Entries),
		"threshold_evicted":     e.tracker.Stats().Evicted,
		"stream_conflicts":      s.Stream.Conflicts.Load(),
		"stream_gaps":           s.Stream.Gaps.Load(),
		"stream_gap_bytes":      s.Stream.GapBytes.Load(),
		"stream_urgent":         s.Stream.Urgent.Load(),
		"stream_after_close":    s.Stream.AfterClose.Load(),
		"stream_bad_rst":        s.Stream.BadRST.Load(),
		"tiny_segment_flows":    s.Stream.TinySegmentFlows.Load(),
		"bypass_depth":          s.Stream.BypassDepth.Load(),
		"payload_past_depth":    s.Stream.PayloadPastDepth.Load(),
		"bypass_tls":            s.Stream.BypassTLS.Load(),
		"bypass_quic":           s.Stream.BypassQUIC.Load(),
		"quic_hellos":           s.QUIC.Hellos.Load(),
		"quic_unreadable":       s.QUIC.Unreadable.Load(),
		"tls_client_hellos":     s.TLS.ClientHellos.Load(),
		"tls_server_hellos":     s.TLS.ServerHellos.Load(),
		"tls_certificates":      s.TLS.Certificates.Load(),
		"tls_not_tls":           s.TLS.NotTLS.Load(),
		"tls_overflow":          s.TLS.Overflow.Load(),
		"bypass_pass_rule":      s.Stream.BypassPass.Load(),
		"alerts_1star":          s.AlertsByStars[1].Load(),
		"alerts_2star":          s.AlertsByStars[2].Load(),
		"alerts_3star":          s.AlertsByStars[3].Load(),
	}
}
