// Package rules parses Suricata-syntax signatures and matches them against
// the buffers the engine extracts (packet payload, HTTP request and response
// parts, DNS query name, TLS SNI).
//
// Parsing is forgiving per rule and strict per keyword: a rule with a
// keyword this package does not implement yet, or a bad value, is skipped
// and reported as a LoadError with file:line and a reason, while the other
// rules load. Keywords are dispatched through a table (options.go), so the
// language grows by adding entries.
//
// Both spellings of buffers are accepted: sticky buffers ("http.uri;
// content:...") and the legacy content modifiers ("content:...; http_uri;").
//
// Supported now: actions alert, drop, reject (rejectsrc/dst/both), pass;
// protocols ip, tcp, udp, icmp (v4 and v6), http, tls, dns (and smtp, ftp,
// pop3, imap, ssh as an application name); addresses and ports with lists,
// ranges, negation and $VARS; -> and <>; options msg, sid, rev, gid,
// classtype, priority, reference, metadata, target, content (|hex|,
// escapes, negation), uricontent, nocase, depth, offset, distance, within,
// fast_pattern (accepted), flow, the sticky buffers and legacy modifiers of
// Buffer, flowbits and noalert (flowbits.go), threshold and
// detection_filter (threshold.go); the stateful ones act in Set.PostMatch,
// which the caller runs on Match's result with the flow's Bits and its
// Tracker in the Input. Payload keywords (payload.go, pcre.go): pcre
// with Suricata's flags, isdataat, byte_test, byte_jump, byte_extract (its
// variables usable as later offsets, depths, distances, withins and
// values), bsize, startswith, endswith, rawbytes. Packet keywords
// (packet.go, on the Input's packet facts): dsize, urilen, flags, ttl,
// itype, icode, ip_proto, app-layer-protocol. Session keywords
// (session.go): stream_size, ssl_version, ssl_state, id, icmp_id,
// icmp_seq; tag is accepted without effect and counted (Set.Ignored). File
// keywords (file.go, on Input.File, which the engine fills at a file's
// end): filename, fileext, filemagic, filesize, filemd5, filesha1,
// filesha256 (hash list files relative to the rules file, or inline).
// Everything else is rejected as "unsupported keyword".
//
// The Input fields the engine fills (see Input): Proto, App, addresses,
// ports, ToServer, Established, Buf; PayloadLen, TTL, TCPFlags, ICMPType,
// ICMPCode; IPID, ICMPID, ICMPSeq, StreamBytesToServer/ToClient,
// TLSVersion, TLSState; File; Flowbits, Tracker, Now.
//
// ET Open 2019 (../shared/data/et-open-2019, TestETOpen): 19,425 of the
// 19,470 enabled rules load (99.8%). The 45 rejected: 29 use protocol smb
// (no SMB parser), 4 classtype Bitcoin-event (not in classification.config),
// 4 asn1, 2 unterminated quotes, 2 port lists "!a,!b" without brackets, 1
// each ftpbounce, ssh_proto, odd hex digits in a content, two thresholds
// in one rule.
//
// Inspection follows Suricata: each buffer has its own ordered list of
// match elements (content, pcre, isdataat, byte_*, bsize); a relative
// element counts from the end of the previous match in the same buffer
// (content and pcre end, byte_jump target, byte_extract's bytes), or from
// the buffer's start; a relative element without a sticky buffer inspects
// the buffer of the content or pcre before it; a later occurrence is tried
// when the rest of the list fails and depends on it (bounded). Contents
// on the HTTP host buffer are caseless (Suricata lowercases that buffer).
//
// Matching: every rule is indexed under the buffer of its fast pattern
// (the content marked fast_pattern, chopped by fast_pattern:offset,length,
// else as Suricata: the longest positive content of an application buffer,
// else of the payload, method or status), and within the buffer by transport
// (TCP, UDP, other) and direction (to server, to client), as Suricata's
// signature group heads; each such bucket's fast patterns are compiled
// into a Hyperscan database (package literal, libvectorscan: the matcher
// Suricata uses) and, for buffers that are most often short (method,
// host, status code, DNS name), also into an Aho-Corasick DFA over
// case-folded byte classes (prefilter.go, ac.go), since a Hyperscan scan
// costs ~75 ns before its first byte. Match runs each present buffer once
// through its variant's database (0.3-1 ns a byte) or automaton (one table
// load per byte; buffers of 256 bytes or more as four interleaved lanes),
// whatever the number of rules, then verifies the rules of the
// confirmed patterns in load order: protocol and flow, header, packet
// keywords, every content list. Rules without a positive content are
// keyed by their narrower address list when they have one (iponly.go: binary search over
// IPv4 segments, as Suricata's IP-only engine; ET Open's ~1,200 reputation
// rules), the rest grouped by protocol and application.
//
// Cost (BenchmarkMix*, a 2-core EPYC shared with other jobs, so read the
// ratios): on the HTTP/DNS/TLS mix, all ET Open rules take ~2.8 us per
// inspection (4.4 us with automata alone) against ~35 ns for one
// header-only rule. Through the whole engine (dataplane/replay
// BenchmarkEngineMix*: decode, flow, reassembly, HTTP/DNS/TLS parsing,
// matching) all rules cost ~2.9x one rule per packet. Loading all of ET
// Open takes ~1.9 s (Hyperscan's compiler is most of it) and keeps ~65 MB
// of heap, 14 MB of it databases and automata (automata alone: 0.7 s,
// 141 MB, 79 MB).
//
// Match does not allocate once the Input has its scratch (made on its
// first Match); one Set serves many goroutines, one Input each.
// Set.EnableProfiling counts per rule checks, matches and time.
package rules
