// Package pcre runs the pcre patterns of Suricata rules with PCRE2 (libpcre2-8, through cgo), the engine
// Suricata itself uses, so a rule's pcre matches here exactly where it matches in Suricata.
//
// # Contract
//
// Compile takes the pattern between the slashes and the compile flags (Options: the /i s m x A E G letters;
// buffer and position letters such as R U I P H are the rules package's business). A bad pattern returns an
// error wrapping ErrCompile that names the offset and PCRE2's reason. Patterns are bytes, not UTF-8: \xNN is
// one byte, \w \s \d are ASCII. Compile JIT-compiles when the platform has PCRE2 JIT (x86-64 and arm64 do) and
// falls back to the interpreter otherwise (Regexp.JIT reports which).
//
// Regexp.Find(data, start) returns the first match at or after start as byte offsets [ms, me) into data, or
// ms = -1. start works like PCRE's start_offset: lookbehind and \b see data before start, ^ (without /m) still
// means the start of data, \G means start. A start outside [0, len(data)] finds nothing. A Regexp is immutable
// and safe for concurrent use; its C memory is freed by a runtime cleanup when it becomes garbage (no Close).
//
// Every Find runs under Suricata's default limits (MatchLimit 3500, DepthLimit 1500; interpreter heap 1 MiB;
// JIT stack 32 KiB-512 KiB). A Find that reaches a limit returns no match, as Suricata does, and counts in
// LimitHits (export it as a metric); any other PCRE2 failure counts in MatchErrors. Suricata's /O flag (lift
// the limit for one rule) is not supported.
//
// # Hot path cost
//
// One cgo call per Find (about 50-80 ns of fixed cost: BenchmarkFindLiteral scans 1 KB in ~80 ns) plus the JIT
// code. The per-call C state (match data for one ovector pair, match context with the limits, JIT stack) comes
// from a sync.Pool shared by all patterns, so Find allocates nothing on the Go heap once warm (TestFindAllocs;
// after a GC empties the pool one matcher is re-created).
//
// # Why PCRE2 (measured on ET Open 2019, amd64 AMD EPYC, 2 cores)
//
// ET Open 2019 holds 10,750 pcre options (8 more are unparseable, in commented-out rules), 4,889 distinct
// pattern+flag pairs. The candidates were github.com/dlclark/regexp2 v1.11.5 (backtracking, .NET syntax) and
// libpcre2 10.42 through cgo. The measurement is internal/enginecmp (its own Go module, so regexp2 never enters
// the firmware's go.mod) and, for PCRE2 alone, TestETOpenCompile, TestETOpenCorpus and the benchmarks here.
//
//	                         compiles       fails  main reasons for failing
//	PCRE2 10.42 (JIT)        4889 (100%)        0  -
//	regexp2 .NET mode        4644 (95.0%)     245  207 (?P<name>/(?P=name), 23 \_, 7 possessive a++, 4 /G
//	regexp2 RE2 mode         4668 (95.5%)     221  205 (?P=name), 8 possessive, 4 /G, 4 \x without digits
//	regexp2 ECMAScript mode  4671 (95.5%)     218  207 (?P..., 7 possessive, 4 /G
//
// Correctness, on the patterns both compile, first match on ~57,000 inputs (samples generated from each
// pattern, the rule's content strings in HTTP-like text, a 1 KB HTTP request, a 16 KB HTML body): regexp2
// disagrees with PCRE2 on 82 (.NET), 168 (RE2 mode) and 34 (ECMAScript) inputs — \W \s \d treating bytes >= 0x80
// as Unicode letters, $ and \s around \r\n differences — and timed out (200 ms) once; 28 inputs were skipped
// because PCRE2 hit the match limit. PCRE2 is Suricata's own engine, so it is the reference by definition.
//
// Speed, all patterns both compile (4,644) over the same subject, ns per pattern per Find:
//
//	                1 KB HTTP request          16 KB HTML body
//	PCRE2 JIT         437 ns, 0 allocs           4.1 µs, 0 allocs
//	regexp2       110,700 ns, 1.4 allocs       434 µs, 4.9 allocs      (subject pre-converted to []rune)
//
// PCRE2 is ~250x faster on the request and ~100x on the body and allocates nothing. Over all 4,889 ET patterns
// (BenchmarkFindETOpen) PCRE2 takes 3.7 ms per 1 KB request (763 ns/pattern) and 20 ms per 16 KB body
// (4.1 µs/pattern): running every pcre is far too slow for the packet path, which is why the rules package only
// runs a pcre after the rule's content prefilter has matched. In the corpus test 46 of 58,410 Finds (45
// patterns, mostly ^((?!</applet>).)+? style scans over the 16 KB body) reach Suricata's match limit and so do
// not match, exactly as in Suricata.
//
// The cost of the choice: cgo and libpcre2-dev at build time (make deps installs it; the arm64 cross build needs
// libpcre2-dev:arm64 and PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig).
package pcre
