package archive

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// walked is what a walk passed to its function, one line per member.
func walkAll(t *testing.T, data []byte, lim Limits) ([]string, Stats, error) {
	t.Helper()
	var got []string
	st, err := Walk(data, lim, func(e Entry, m []byte) error {
		line := fmt.Sprintf("%s d=%d %s size=%d", e.Path, e.Depth, e.Format, e.Size)
		if e.Encrypted {
			line += " encrypted"
		}
		if e.Skipped != "" {
			line += " skipped=" + e.Skipped
		}
		if m != nil && e.Format == None {
			line += fmt.Sprintf(" %q", abbrev(m))
		}
		if m != nil && int64(len(m)) != e.Size {
			t.Errorf("%s: Size %d but %d bytes passed", e.Path, e.Size, len(m))
		}
		got = append(got, line)
		return nil
	})
	return got, st, err
}

func abbrev(m []byte) string {
	if len(m) > 16 {
		return string(m[:16]) + "…"
	}
	return string(m)
}

type file struct {
	name string
	data []byte
}

func mkZip(t testing.TB, files ...file) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, f := range files {
		method := zip.Deflate
		if strings.HasPrefix(f.name, "stored-") {
			method = zip.Store
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(f.data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func mkTar(t testing.TB, format tar.Format, files ...file) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range files {
		typ := byte(tar.TypeReg)
		if strings.HasSuffix(f.name, "/") {
			typ = tar.TypeDir
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Size: int64(len(f.data)), Mode: 0o644, Typeflag: typ, Format: format}); err != nil {
			t.Fatal(err)
		}
		tw.Write(f.data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func mkGzip(t testing.TB, name string, data []byte) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Name = name
	zw.Write(data)
	zw.Close()
	return b.Bytes()
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNested: a zip (deflate and stored members) in a gzip in a tar, with
// a directory that is not a member; paths, depths, formats and order.
func TestNested(t *testing.T) {
	inner := mkZip(t, file{"docs/a.txt", []byte("alpha alpha alpha")}, file{"stored-b.bin", []byte("bravo")})
	tarball := mkTar(t, tar.FormatPAX,
		file{"dir/", nil},
		file{"dir/inner.zip.gz", mkGzip(t, "", inner)},
		file{"dir/" + strings.Repeat("long", 40) + ".txt", []byte("charlie")}, // pax long name
	)
	got, st, err := walkAll(t, tarball, Limits{MaxDepth: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		fmt.Sprintf("dir/inner.zip.gz d=1 gzip size=%d", len(mkGzip(t, "", inner))),
		fmt.Sprintf("dir/inner.zip d=2 zip size=%d", len(inner)),
		`dir/inner.zip/docs/a.txt d=3 none size=17 "alpha alpha alph…"`,
		`dir/inner.zip/stored-b.bin d=3 none size=5 "bravo"`,
		"dir/" + strings.Repeat("long", 40) + `.txt d=1 none size=7 "charlie"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("walk:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if st.Entries != 5 || st.MaxDepth != 3 {
		t.Errorf("stats %+v, want 5 entries, depth 3", st)
	}
	// One level less and the zip is not opened: the walk stops with ErrBomb.
	_, _, err = walkAll(t, tarball, Limits{MaxDepth: 2})
	if !errors.Is(err, ErrBomb) || !strings.Contains(err.Error(), "nesting depth 3 over 2") {
		t.Errorf("MaxDepth 2: %v, want ErrBomb for depth 3", err)
	}
}

// TestFormats: each format and variant from testdata or built here.
func TestFormats(t *testing.T) {
	gnu := mkTar(t, tar.FormatGNU, file{strings.Repeat("g", 120) + ".txt", []byte("gnu long name")})
	v7 := mkTar(t, tar.FormatUSTAR, file{"v7.txt", []byte("old")})
	copy(v7[257:265], make([]byte, 8)) // no magic: a v7 header, found by its checksum
	sum := 0
	for i, c := range v7[:512] {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int(c)
	}
	copy(v7[148:], fmt.Sprintf("%06o\x00 ", sum))
	twoMembers := append(mkGzip(t, "two.txt", []byte("one,")), mkGzip(t, "", []byte("two"))...)
	twoMembers = append(twoMembers, make([]byte, 100)...) // tape padding
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"gzip multi-member", twoMembers, `two.txt d=1 none size=7 "one,two"`},
		{"tar GNU long name", gnu, strings.Repeat("g", 120) + `.txt d=1 none size=13 "gnu long name"`},
		{"tar v7", v7, `v7.txt d=1 none size=3 "old"`},
		{"bzip2", readTestdata(t, "nums.txt.bz2"), `d=1 none size=108894 "1\n2\n3\n4\n5\n6\n7\n8\n…"`},
		{"xz sha256 check", readTestdata(t, "hello.txt.xz"), `d=1 none size=14 "hello from xz\n"`},
		{"xz 6 blocks crc64", readTestdata(t, "nums-blocks.txt.xz"), `d=1 none size=108894 "1\n2\n3\n4\n5\n6\n7\n8\n…"`},
		{"xz 2 streams", readTestdata(t, "hello-2streams.txt.xz"), `d=1 none size=28 "hello from xz\nhe…"`},
		{"xz x86 filter", readTestdata(t, "nums-bcj.txt.xz"), `d=1 none size=0 skipped=xz filter 0x4 not supported (only LZMA2 alone)`},
		{"zip encrypted", readTestdata(t, "encrypted.zip"), `s.txt d=1 none size=7 encrypted`},
		{"zip stored with data descriptor", readTestdata(t, "streamed.zip"), `- d=1 none size=9 "streamed\n"`},
		{"7z solid LZMA2, empty file and directories", readTestdata(t, "solid-lzma2.7z"),
			"dir/nums.txt d=1 none size=23893 \"1\\n2\\n3\\n4\\n5\\n6\\n7\\n8\\n…\"\n" +
				"dir/sub/deep.txt d=1 none size=5 \"deep\\n\"\nhello.txt d=1 none size=9 \"hello 7z\\n\""},
		{"7z LZMA per file", readTestdata(t, "lzma-nonsolid.7z"),
			"dir/nums.txt d=1 none size=23893 \"1\\n2\\n3\\n4\\n5\\n6\\n7\\n8\\n…\"\n" +
				"dir/sub/deep.txt d=1 none size=5 \"deep\\n\"\nhello.txt d=1 none size=9 \"hello 7z\\n\""},
		{"7z copy", readTestdata(t, "copy.7z"), `hello.txt d=1 none size=9 "hello 7z\n"`},
		{"7z encrypted", readTestdata(t, "encrypted.7z"), `hello.txt d=1 none size=9 encrypted`},
		{"7z encrypted headers", readTestdata(t, "encrypted-headers.7z"), `(encrypted 7z headers) d=1 none size=0 encrypted`},
		{"7z BCJ filter", readTestdata(t, "bcj.7z"), `hello.txt d=1 none size=9 "hello 7z\n"`},
		{"7z PPMd", readTestdata(t, "ppmd.7z"), `hello.txt d=1 none size=9 skipped=7z coder 030401 not supported`},
		{"7z BCJ2", readTestdata(t, "bcj2.7z"), `hello.txt d=1 none size=9 skipped=7z coder chain of 4 (030101, 0303011b) not supported`},
		{"zip with a directory", mkZip(t, file{"d/", nil}, file{"d/x", []byte("x")}), `d/x d=1 none size=1 "x"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, _, err := walkAll(t, c.data, Limits{})
			if err != nil && c.name != "xz x86 filter" {
				t.Fatal(err)
			}
			if g := strings.TrimSpace(strings.Join(got, "\n")); g != c.want {
				t.Errorf("got  %s\nwant %s", g, c.want)
			}
		})
	}
}

// TestSelfExtractor: a zip behind an executable stub (offsets relative to
// the zip, as zip(1) writes them) is read by its central directory.
func TestSelfExtractor(t *testing.T) {
	data := readTestdata(t, "sfx.zip.exe")
	var got []string
	w := walker{lim: Limits{}.withDefaults(), inLen: int64(len(data)), fn: func(e Entry, m []byte) error {
		got = append(got, fmt.Sprintf("%s %q", e.Path, m))
		return nil
	}}
	if err := w.walk(data, Zip, "", 1); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ";") != `d/hello.txt "hello from xz\n"` {
		t.Errorf("got %v", got)
	}
}

// TestXzDictionaryClaim: a block header claiming a 4 GiB dictionary must
// not make Walk allocate it (the xz package's own reader would).
func TestXzDictionaryClaim(t *testing.T) {
	data := bytes.Clone(readTestdata(t, "hello.txt.xz"))
	// Block header at 12: size byte, flags, filter id 0x21, props size 1, dict byte.
	if data[14] != 0x21 || data[15] != 1 {
		t.Fatalf("unexpected block header % x", data[12:24])
	}
	data[16] = 40 // 4 GiB - 1
	hlen := (int(data[12]) + 1) * 4
	crc := crc32.ChecksumIEEE(data[12 : 12+hlen-4])
	data[12+hlen-4], data[12+hlen-3], data[12+hlen-2], data[12+hlen-1] = byte(crc), byte(crc>>8), byte(crc>>16), byte(crc>>24)
	allocs := heapDelta(func() {
		got, _, err := walkAll(t, data, Limits{})
		if err != nil || len(got) != 1 || !strings.Contains(got[0], "hello from xz") {
			t.Errorf("walk %v: %v", got, err)
		}
	})
	if allocs > 128<<20 {
		t.Errorf("a 4 GiB dictionary claim cost %d MiB of allocation", allocs>>20)
	}
}

// TestTruncated: every prefix of a zip, a tar.gz and an xz either walks
// cleanly or ends with ErrCorrupt, never panics, and the members complete
// before the cut are still delivered (the zip by its local headers).
func TestTruncated(t *testing.T) {
	first := bytes.Repeat([]byte("first member "), 100)
	zipped := mkZip(t, file{"first.txt", first}, file{"second.txt", []byte("second")})
	tgz := mkGzip(t, "", mkTar(t, tar.FormatPAX, file{"first.txt", first}, file{"second.txt", []byte("second")}))
	inputs := map[string][]byte{"zip": zipped, "tar.gz": tgz, "xz": readTestdata(t, "nums-blocks.txt.xz"),
		"7z": readTestdata(t, "solid-lzma2.7z")}
	for name, data := range inputs {
		firstAt := -1             // the shortest prefix that still yields first.txt whole
		step := 1 + len(data)/400 // every cut of the small ones
		for n := 0; n < len(data); n += step {
			gotFirst := false
			_, err := Walk(data[:n], Limits{}, func(e Entry, m []byte) error {
				if bytes.Equal(m, first) {
					gotFirst = true
				}
				return nil
			})
			if err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s cut at %d of %d: %v, want ErrCorrupt", name, n, len(data), err)
			}
			if gotFirst && firstAt < 0 {
				firstAt = n
			}
			if firstAt >= 0 && !gotFirst {
				t.Errorf("%s cut at %d: first member lost (it was reached cut at %d)", name, n, firstAt)
			}
		}
		if (name == "zip" || name == "tar.gz") && (firstAt < 0 || firstAt > len(data)-30) {
			t.Errorf("%s: first member reached only from a cut at %d of %d", name, firstAt, len(data))
		}
		t.Logf("%s (%d bytes): first member whole from a cut at %d", name, len(data), firstAt)
	}
}

// TestFnError: an error from fn stops the walk and comes back wrapped.
func TestFnError(t *testing.T) {
	stop := errors.New("found it")
	n := 0
	_, err := Walk(mkZip(t, file{"a", []byte("a")}, file{"b", []byte("b")}), Limits{}, func(Entry, []byte) error {
		n++
		return stop
	})
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("err %v after %d calls, want %v after 1", err, n, stop)
	}
}

// TestNotAContainer: plain data is not walked.
func TestNotAContainer(t *testing.T) {
	st, err := Walk([]byte("just text"), Limits{}, func(Entry, []byte) error {
		t.Error("fn called")
		return nil
	})
	if err != nil || st != (Stats{}) {
		t.Errorf("%+v %v", st, err)
	}
}

func TestDetect(t *testing.T) {
	cases := map[Format][]byte{
		Zip:      mkZip(t, file{"a", nil}),
		Gzip:     mkGzip(t, "", nil),
		Tar:      mkTar(t, tar.FormatGNU, file{"a", nil}),
		Xz:       readTestdata(t, "hello.txt.xz"),
		Bzip2:    readTestdata(t, "nums.txt.bz2"),
		SevenZip: []byte("7z\xbc\xaf\x27\x1c\x00\x04"),
		None:     make([]byte, 1024),
	}
	for f, data := range cases {
		if got := Detect(data); got != f {
			t.Errorf("%s: Detect says %s", f, got)
		}
	}
	if Detect([]byte("PK")) != None || Detect(nil) != None {
		t.Error("short input detected")
	}
}

// fakeX86 is 64 KiB that looks like x86 code to the BCJ filter: calls and
// jumps (E8, E9) with near targets between other bytes.
func fakeX86() []byte {
	r := rand.New(rand.NewPCG(7, 7))
	b := make([]byte, 0, 64<<10)
	for len(b) < 64<<10-8 {
		switch r.IntN(4) {
		case 0:
			rel := int32(r.IntN(1<<16) - 1<<15)
			b = append(b, byte(0xe8+r.IntN(2)), byte(rel), byte(rel>>8), byte(rel>>16), byte(rel>>24))
		default:
			b = append(b, byte(r.IntN(256)), byte(r.IntN(8)))
		}
	}
	return b
}

// TestSevenZipBCJ: an executable-like file 7-Zip stored with its x86
// branch filter (BCJ) in front of LZMA2 comes out as it went in.
func TestSevenZipBCJ(t *testing.T) {
	want := fakeX86()
	var got []byte
	_, err := Walk(readTestdata(t, "x86-bcj.7z"), Limits{}, func(e Entry, m []byte) error {
		got = bytes.Clone(m)
		return nil
	})
	if err != nil || !bytes.Equal(got, want) {
		diff := 0
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				diff++
			}
		}
		t.Fatalf("err %v; %d bytes, want %d; %d bytes differ", err, len(got), len(want), diff)
	}
}
