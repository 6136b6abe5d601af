// Package testfiles hands the tests of several packages the same test
// inputs, kept once in the repository. Test-only: never imported by a
// binary.
package testfiles

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// dir is the dataplane directory, found from this file's path so every
// package's tests read the same files wherever they run.
func dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// ISO returns dataplane/archive/testdata/lab.iso.gz unpacked: an ISO 9660
// image made by genisoimage (Joliet and Rock Ridge) holding eicar.com,
// docs/readme.txt and docs/deep/bundle.zip (x.txt).
func ISO(t testing.TB) []byte {
	t.Helper()
	return gunzip(t, filepath.Join(dir(), "archive", "testdata", "lab.iso.gz"))
}

// PlainISO is the same tree without Joliet or Rock Ridge (ISO 9660 level
// 1 names).
func PlainISO(t testing.TB) []byte {
	t.Helper()
	return gunzip(t, filepath.Join(dir(), "archive", "testdata", "plain.iso.gz"))
}

func gunzip(t testing.TB, path string) []byte {
	t.Helper()
	gz, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}
