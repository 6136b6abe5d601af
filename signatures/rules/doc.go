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
// Matching: every rule is indexed under the buffer of its longest positive
// content (its prefilter). Match looks only at rules whose prefilter buffer
// is present in the Input, checks the prefilter with one substring search,
// then verifies the header, flow and every content chain with Suricata's
// offset/depth/distance/within semantics. Match does not allocate. The
// prefilter is a plain per-rule search today; the IPS issue replaces it
// with a multi-pattern automaton behind the same Match.
package rules
