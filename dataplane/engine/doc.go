// Package engine is the inline inspection pipeline of the box: one Engine
// takes the IP packets of one NFQUEUE queue (or of a pcap, in replay) and
// returns a verdict for each.
//
// The packet path is
//
//	packet.Decode → flow.Table → stream (TCP, per direction) → http1 / dnsmsg / tlshello
//	   → signatures (rules, AV, intel) → Verdict + alert.Event to the Sink
//
// Inline means the packet that carries bytes is not released before those
// bytes are inspected: Process runs the whole pipeline for the packet,
// synchronously, before returning its verdict. In particular the packet that
// completes a file (the last body byte, the final chunk, or the FIN of a
// close-delimited body) is held while the file is scanned; if it is
// malicious that packet is dropped, both ends are reset and the rest of the
// flow is dropped, so the client never holds the whole file.
//
// Fragments are reassembled (dataplane/defrag, first data wins): each
// fragment is accepted as it comes except the one that completes the
// datagram, which is held while the rebuilt datagram runs through the
// pipeline and gets its verdict; the receiver can never rebuild a datagram
// the engine dropped.
//
// Verdicts: Accept; Drop (this packet and the rest of the flow, silently:
// the Suricata drop action; or this packet only when TCP normalisation
// refuses it: a conflicting copy, urgent data, data after the end, a full
// reassembly buffer); Reject (Drop plus TCP resets to both ends, injected
// through Config.Reset; for UDP an ICMP port unreachable to the sender when
// Config.Reset is also an Unreacher); Bypass (accept, and the flow needs no
// more inspection). Rule actions map to them: drop -> Drop, reject ->
// Reject, pass -> Bypass without an alert, alert -> Accept; EVE's
// alert.action is "blocked" for Drop and Reject, "allowed" otherwise.
// Config.Stars overrides an alert's stars per sid.
//
// HTTP buffers (http.go), per request or response header block, as
// Suricata fills them: http.uri (percent-decoded, dot segments resolved;
// of a request to a proxy, "GET http://host/path", the path and query),
// http.uri.raw, http.method, http.request_line / http.response_line (no
// CRLF), http.protocol, http.stat_code, http.stat_msg, single header values
// (host, for a request to a proxy the target's; user_agent, cookie,
// referer, accept, accept_enc, accept_lang, connection, content_type,
// content_len, server, location), http.header
// ("Name: value\r\n" per header, trimmed, without the start line and
// without Cookie / Set-Cookie), http.header.raw (the block as received),
// http.header_names ("\r\nName\r\n...\r\n\r\n"), http.start (start
// line, headers, empty line), http.request_header / http.response_header
// (every header, cookie included, one buffer) and file.name (the name the
// fileinfo record gets: Content-Disposition's filename or the URI's last
// segment) when the message has a body. They are built in per-engine
// scratch buffers: no allocation.
//
// A connection that leaves HTTP on purpose, at a 2xx answer to CONNECT (a
// tunnel through a proxy) or a 101 (WebSocket, h2c), is recognised afresh
// from the next byte (http_tunnels counts them): TLS through a proxy has
// its handshake followed, its SNI matched against rules and threat
// intelligence and the flow bypassed once it encrypts, as a direct one;
// plain HTTP through it is parsed as HTTP; anything else is opaque. The
// tunnel is never taken for the body of the proxy's answer.
//
// The bundle is loaded once per packet (SetBundle from a reload swaps an
// atomic pointer; a packet in flight finishes with the bundle it began
// with).
//
// TCP is reassembled and normalised as the stream package documents (first
// data wins, gaps declared, never stalled). Per-flow bypass (evasion.go):
//
//	opaque / unknown   at StreamDepth (default 1 MiB) in either direction
//	SMTP, POP3, IMAP   never by depth: followed to the end, every message
//	HTTP               at StreamDepth only once a request or response said
//	                   "Connection: close" (no later transaction can carry a
//	                   file) and no file is kept for scanning (one past
//	                   MaxScanSize is scanned up to it, reported partially
//	                   scanned, then the flow bypassed); keep-alive
//	                   connections are followed to their end, so a file
//	                   after a long transfer is still extracted
//	TLS                once both sides sent ChangeCipherSpec or application data
//	QUIC (UDP)         once its ClientHello, read from the Initial packets, is through
//	any (TCP, UDP)     when a pass rule matches
//	DNS                datagrams: not bypassed; over TCP (port 53): at StreamDepth
//
// Payload rules (content on the raw packet, no buffer) see the first
// StreamDepth bytes of each direction of a TCP flow, as at Suricata's
// stream.reassembly.depth; a flow followed past it (HTTP, mail) still has
// its requests, responses and messages parsed, their buffers matched and
// their files scanned (payload_past_depth counts the packets skipped).
//
// TLS flows (tls.go): the handshake of each direction is parsed
// (dataplane/tlshello) and each message inspected once per flow: the
// ClientHello with tls.sni, ja3.hash and ja3.string, the ServerHello with
// ja3s.hash, the TLS ≤ 1.2 certificate with tls.cert_subject, _issuer,
// _serial and _fingerprint. Alerts on the flow carry the EVE tls object.
//
// Stateful rule keywords (rules.Set.PostMatch, after each Match): a flow's
// flowbits live in its state (rules.Bits, words allocated once per pooled
// state and kept) and are cleared when the flow ends or when a reloaded rule
// Set first touches them (a new Set may number the names differently, so a
// detection spanning a reload can be missed, never misfired). Within one
// inspection the rules that set bits run before those that test them. A
// noalert rule sets its bits and never alerts, drops or rejects. threshold
// and detection_filter counts live in one rules.Tracker per Engine, that is
// per worker queue (no lock on the packet path): a source whose flows hash
// to two queues is counted on each separately. The tracker is bounded
// (Config.ThresholdEntries, default 16384 entries of 64 bytes); windows
// evicted for lack of room are counted (threshold_evicted) and restart.
// Windows run on packet timestamps, so a replay gives the same alerts.
//
// Files (file.go, scan.go, http.go, mail.go): HTTP bodies both ways
// (decoded through Content-Encoding by dataplane/contentenc, multipart
// uploads split by dataplane/mime, Range pieces marked partial) and every
// MIME part of every SMTP, POP3 and IMAP message (dataplane/mail, mime) are
// kept up to MaxScanSize (MaxScanTotal box-wide, idle buffers included) in
// buffers from a per-engine free list, typed (dataplane/filetype), scanned
// (signatures/av) and, when they are containers, unpacked
// (dataplane/archive) and every member scanned. Every file gets a SHA-256,
// computed on the engine's helper goroutine (bytes past MaxScanSize are
// copied to it in 64 KiB pieces as they stream; a kept file is hashed
// there while the worker scans it); MD5 and SHA-1 only when a rule
// (filemd5, filesha1), a hash list of that kind or Config.FileMD5/FileSHA1
// asks. The scan runs while the packet that completes the file (or the
// MIME part) is held: a malicious file gets that packet and the rest of the flow dropped
// and both sides reset, so the client never holds it whole and an SMTP
// server never sees the end of DATA. A neutralised download is remembered
// box-wide (Blocked): its URL and its SHA-256 for 24 h. The file keywords
// (rules.FileFacts) see each file when it ends.
//
// A flow that times out or is evicted with bytes or a file still open (a
// body delimited by a close that never came, a message cut short) is
// inspected as it is released, while the engine holds another flow's
// packet or none: its rules see the flow's own protocol, addresses and
// ports, and its alerts say "allowed", since every packet it had has
// passed (a malicious file is still remembered in Blocked).
//
// C&C: threat intel is matched at a flow's first packet (destination
// address and port), on DNS queries and answers over UDP and TCP
// (addresses learned per client for the answer's TTL; Config.DNSBlock
// answers a datagram's query with NXDOMAIN or a sinkhole in the resolver's
// place, and resets a TCP connection's), TLS SNI, JA3 and server certificate
// (and the SNI, JA3 and JA4 of a QUIC connection's ClientHello, quic.go),
// HTTP Host and URL; indicators below IntelBlockConfidence alert ★★ and
// pass. Heuristics (heuristics.go, shared box-wide): beaconing per host and
// destination, NXDOMAIN bursts of random-looking names, and an incident
// when an AV hit and a C&C signal meet on one host.
//
// Detections the engine raises itself (gid 1):
//
//	2210001  AV: malicious file in an HTTP transfer             ★★★ blocked
//	2210002  AV: malicious mail attachment (SMTP, POP3, IMAP)   ★★★ blocked
//	2210003  AV: request for a file blocked earlier (resume)    ★★  blocked
//	2210004  AV: unscannable file (bomb, encrypted, time limit) ★★  allowed (BlockUnscannable: blocked)
//	2220001  C&C: DNS lookup of a listed domain                  ★★  allowed (DNSBlock: ★★★ blocked)
//	2220002  C&C: connection to a listed address[:port]          ★★★ blocked
//	2220003  C&C: connection to an address of a listed domain    ★★★ blocked
//	2220004  C&C: HTTP request to a listed host                  ★★★ blocked
//	2220005  C&C: TLS ClientHello naming a listed domain (SNI)   ★★★ blocked
//	2220006  C&C: TLS client fingerprint (JA3) of listed malware ★★  allowed
//	2220007  C&C: listed TLS server certificate (SHA-1)          ★★★ blocked
//	2220008  C&C: HTTP request for a listed URL                  ★★★ blocked
//	2220010  C&C: beaconing (periodic connections)               ★★  allowed
//	2220011  C&C: DGA (burst of NXDOMAIN, random-looking names)  ★★  allowed
//	2220020  incident: AV and C&C signals on one host            ★★★
//	2230010  STREAM: conflicting retransmission (evasion)        ★★  packet dropped
//	2230011  STREAM: urgent data (evasion)                       ★   packet dropped
//
// Cost: Process does not allocate for packets of known flows on the accept
// path (AllocsPerRun in the tests). Allocation happens per new flow (pooled
// state), per file (hashes, scan buffer from a pool) and per alert.
//
// An Engine is not safe for concurrent use: run one per queue. SetBundle
// and Counters may be called from any goroutine.
package engine
