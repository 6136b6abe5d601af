// Package enginecmp is the measurement that chose PCRE2 (cgo) over github.com/dlclark/regexp2 for
// signatures/pcre. It is its own Go module so that regexp2 never enters the firmware's go.mod; run it with
//
//	cd signatures/pcre/internal/enginecmp && go test -v -run Compare -bench . -benchtime 2s
//
// TestCompare compiles every distinct ET Open pcre under each candidate and, for the patterns both compile,
// compares the first match on inputs built from the rule (etpcre.Inputs) and on the HTTP request and body in
// signatures/pcre/testdata. The benchmarks time both engines over those texts. The numbers are copied into
// signatures/pcre/doc.go.
package enginecmp
