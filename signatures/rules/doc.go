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
// Buffer. Everything else (pcre, flowbits, threshold, isdataat, dsize,
// byte_*, ...) is rejected as "unsupported keyword" until the IPS issue.
//
// Content semantics follow Suricata: each buffer has its own content list;
// a relative content (distance/within) counts from the end of the previous
// content of the same buffer, or from the buffer's start; a later
// occurrence is tried when the rest of the list fails (bounded). Contents
// on the HTTP host buffer are caseless (Suricata lowercases that buffer).
//
// Matching: every rule is indexed under the buffer of its longest positive
// content (its prefilter); rules without one are checked on every Match.
// Match looks only at rules whose prefilter buffer is present in the Input,
// drops most of them with a byte-pair filter, checks protocol and flow,
// searches the prefilter pattern, then verifies addresses, ports and every
// content list. Match does not allocate. The prefilter (prefilter.go) is
// the seam where the IPS issue puts a multi-pattern automaton.
package rules
