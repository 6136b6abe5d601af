package archive

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"
)

// zerosDeflate returns a raw deflate stream of n MiB of zeros and its CRC,
// without compressing n MiB: after a sync flush the compressor emits the
// same bytes for every further MiB of zeros, so the stream is the first
// two MiB, that chunk repeated, and a final empty block. mkZerosDeflate
// checks the repetition and a small instance is inflated in full.
func zerosDeflate(t testing.TB, mib int) ([]byte, uint32) {
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	zeros := make([]byte, 1<<20)
	var ends [4]int
	for i := range ends {
		fw.Write(zeros)
		fw.Flush()
		ends[i] = buf.Len()
	}
	chunk := buf.Bytes()[ends[1]:ends[2]]
	if !bytes.Equal(chunk, buf.Bytes()[ends[2]:ends[3]]) {
		t.Fatal("deflate of zeros does not repeat after a flush: build the bomb another way")
	}
	out := bytes.Clone(buf.Bytes()[:ends[1]])
	for i := 2; i < mib; i++ {
		out = append(out, chunk...)
	}
	out = append(out, 1, 0, 0, 0xff, 0xff) // final empty stored block
	crc := uint32(0)
	for i := 0; i < mib; i++ {
		crc = crc32.Update(crc, crc32.IEEETable, zeros)
	}
	return out, crc
}

// zipRaw is a zip with one member whose deflate stream is given; usize is
// what the headers claim.
func zipRaw(t testing.TB, name string, stream []byte, crc uint32, usize uint64) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: name, Method: zip.Deflate, CRC32: crc,
		CompressedSize64: uint64(len(stream)), UncompressedSize64: usize})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(stream)
	zw.Close()
	return b.Bytes()
}

func TestZerosDeflateIsValid(t *testing.T) {
	s, crc := zerosDeflate(t, 8)
	out, err := io.ReadAll(flate.NewReader(bytes.NewReader(s)))
	if err != nil || len(out) != 8<<20 || crc32.ChecksumIEEE(out) != crc || bytes.Count(out, []byte{0}) != len(out) {
		t.Fatalf("8 MiB zeros stream inflates to %d bytes, err %v", len(out), err)
	}
}

// peakHeap runs f and returns the highest live heap seen while it ran
// (sampled every millisecond) above the heap before it, and the bytes
// allocated in all.
func peakHeap(f func()) (peak, total uint64) {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(sample)
	base, alloc0 := sample[0].Value.Uint64(), sample[1].Value.Uint64()
	var mu sync.Mutex
	var high uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			mu.Lock()
			high = max(high, s[0].Value.Uint64())
			mu.Unlock()
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(done)
	wg.Wait()
	metrics.Read(sample)
	high = max(high, sample[0].Value.Uint64())
	if high < base {
		high = base
	}
	return high - base, sample[1].Value.Uint64() - alloc0
}

// TestEntries: the member count limit.
func TestEntries(t *testing.T) {
	files := make([]file, 50)
	for i := range files {
		files[i] = file{name: string(rune('A' + i)), data: []byte("x")}
	}
	st, err := Walk(mkZip(t, files...), Limits{MaxEntries: 30}, func(Entry, []byte) error { return nil })
	if !errors.Is(err, ErrBomb) || !strings.Contains(err.Error(), "more than 30 members") || st.Entries != 30 {
		t.Fatalf("%+v %v, want ErrBomb after 30 members", st, err)
	}
}

func heapDelta(f func()) uint64 {
	_, total := peakHeap(f)
	return total
}

// TestBombZeros: one member of 1 GiB of zeros (about 1 MiB of deflate) is
// stopped by each limit in turn, with bounded memory, also when the
// headers lie about its size.
func TestBombZeros(t *testing.T) {
	stream, crc := zerosDeflate(t, 1024)
	honest := zipRaw(t, "zeros.bin", stream, crc, 1<<30)
	lying := zipRaw(t, "zeros.bin", stream, crc, 1000)
	t.Logf("1 GiB of zeros: %d bytes of zip", len(honest))
	cases := []struct {
		name string
		data []byte
		lim  Limits
		msg  string
		heap uint64 // the most the walk may hold
	}{
		{"defaults: ratio", honest, Limits{}, "zip member zeros.bin: ratio", 8 << 20},
		{"lying header: ratio", lying, Limits{}, "zip member zeros.bin: ratio", 8 << 20},
		{"no ratio: entry size", honest, Limits{MaxRatio: -1}, "zip member zeros.bin: size over 67108864 bytes", 192 << 20},
		{"no ratio, lying: entry size", lying, Limits{MaxRatio: -1}, "size over 67108864 bytes", 192 << 20},
		{"no ratio: total", honest, Limits{MaxRatio: -1, MaxEntrySize: 1 << 40, MaxTotal: 16 << 20}, "total unpacked", 40 << 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			var st Stats
			start := time.Now()
			peak, total := peakHeap(func() {
				st, err = Walk(c.data, c.lim, func(Entry, []byte) error { return nil })
			})
			if !errors.Is(err, ErrBomb) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err %v, want ErrBomb with %q", err, c.msg)
			}
			if st.Entries != 0 {
				t.Errorf("the bomb member was passed on: %+v", st)
			}
			if peak > c.heap {
				t.Errorf("peak heap %d MiB over %d MiB", peak>>20, c.heap>>20)
			}
			t.Logf("%v in %v, peak heap %.1f MiB, allocated %.1f MiB", err, time.Since(start).Round(time.Millisecond), float64(peak)/(1<<20), float64(total)/(1<<20))
		})
	}
}

// TestBomb42: a 42.zip-style bomb, 16 zips of 16 zips ... five levels,
// with 1 GiB of zeros in every leaf (16^5 GiB in all).
func TestBomb42(t *testing.T) {
	stream, crc := zerosDeflate(t, 1024)
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for i := 0; i < 16; i++ {
		w, _ := zw.CreateRaw(&zip.FileHeader{Name: string(rune('a'+i)) + ".bin", Method: zip.Deflate, CRC32: crc,
			CompressedSize64: uint64(len(stream)), UncompressedSize64: 1 << 30})
		w.Write(stream)
	}
	zw.Close()
	level := b.Bytes()
	for depth := 2; depth <= 5; depth++ {
		files := make([]file, 16)
		for i := range files {
			files[i] = file{name: string(rune('a'+i)) + ".zip", data: level}
		}
		level = mkZip(t, files...)
	}
	t.Logf("42-style bomb: %d bytes, 16^5 GiB of zeros at depth 5", len(level))
	// The innermost zips (16 members of 1 MiB of deflate each) already go
	// over 100:1, so with the defaults the ratio trips before any leaf.
	cases := []struct {
		name string
		lim  Limits
		msg  string
	}{
		{"defaults: ratio of the innermost zip", Limits{}, "zip member a.zip/a.zip/a.zip/a.zip: ratio"},
		{"no ratio: leaf size", Limits{MaxRatio: -1}, "zip member a.zip/a.zip/a.zip/a.zip/a.bin: size over"},
		{"no ratio, depth 4", Limits{MaxRatio: -1, MaxDepth: 4}, "zip a.zip/a.zip/a.zip/a.zip: nesting depth 5 over 4"},
		{"no ratio, total", Limits{MaxRatio: -1, MaxTotal: 40 << 20}, "total unpacked"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			peak, total := peakHeap(func() {
				_, err = Walk(level, c.lim, func(Entry, []byte) error { return nil })
			})
			if !errors.Is(err, ErrBomb) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err %v, want ErrBomb with %q", err, c.msg)
			}
			if peak > 256<<20 { // the leaf's 64 MiB while it grows, the zips above it, garbage not yet collected
				t.Errorf("peak heap %d MiB", peak>>20)
			}
			t.Logf("%v; peak heap %.1f MiB, allocated %.1f MiB", err, float64(peak)/(1<<20), float64(total)/(1<<20))
		})
	}
}

// TestBombOverallRatio: many members each under the per-member floor, so
// only the ratio of the whole walk to the input catches them.
func TestBombOverallRatio(t *testing.T) {
	var z bytes.Buffer
	fw, _ := flate.NewWriter(&z, flate.BestCompression)
	fw.Write(make([]byte, 1<<20))
	fw.Close()
	stream, crc := z.Bytes(), crc32.ChecksumIEEE(make([]byte, 1<<20))
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for i := 0; i < 300; i++ {
		w, _ := zw.CreateRaw(&zip.FileHeader{Name: "z" + string(rune('0'+i%10)) + string(rune('a'+i/10)), Method: zip.Deflate,
			CRC32: crc, CompressedSize64: uint64(len(stream)), UncompressedSize64: 1 << 20})
		w.Write(stream)
	}
	zw.Close()
	st, err := Walk(b.Bytes(), Limits{}, func(Entry, []byte) error { return nil })
	if !errors.Is(err, ErrBomb) || !strings.Contains(err.Error(), "overall ratio") {
		t.Fatalf("err %v, want ErrBomb for the overall ratio", err)
	}
	t.Logf("%d bytes: %v after %d members", b.Len(), err, st.Entries)
}

// TestBombOverlap: David Fifield's overlapping-file zip bombs, both the
// full overlap (every central directory entry points at one kernel) and
// the quoted kind (a member's data contains the next local header).
func TestBombOverlap(t *testing.T) {
	stream, crc := zerosDeflate(t, 20)
	one := zipRaw(t, "kernel", stream, crc, 20<<20)
	eocd := bytes.LastIndex(one, []byte(sigEnd))
	cdOff := int(le32(one, eocd+16))
	cd := one[cdOff:eocd]
	var full []byte
	full = append(full, one[:cdOff]...)
	for i := 0; i < 1000; i++ {
		e := bytes.Clone(cd)
		copy(e[46:], []byte{byte('A' + i%26), byte('A' + i/26%26)}) // names differ, all point at offset 0
		full = append(full, e...)
	}
	end := bytes.Clone(one[eocd:])
	binary.LittleEndian.PutUint16(end[8:], 1000)
	binary.LittleEndian.PutUint16(end[10:], 1000)
	binary.LittleEndian.PutUint32(end[12:], uint32(len(cd)*1000))
	full = append(full, end...)

	// Quoted: A is stored and its data is B's local header and data.
	b := zipRaw(t, "B", stream, crc, 20<<20)
	bLocal := b[:bytes.Index(b, []byte(sigCentral))]
	var qb bytes.Buffer
	zw := zip.NewWriter(&qb)
	w, _ := zw.CreateRaw(&zip.FileHeader{Name: "A", Method: zip.Store, CRC32: crc32.ChecksumIEEE(bLocal),
		CompressedSize64: uint64(len(bLocal)), UncompressedSize64: uint64(len(bLocal))})
	w.Write(bLocal)
	zw.Close()
	quoted := qb.Bytes()
	// Add B's central directory entry, pointing inside A's data.
	qEocd := bytes.LastIndex(quoted, []byte(sigEnd))
	qCd := int(le32(quoted, qEocd+16))
	bCd := bytes.Clone(b[bytes.Index(b, []byte(sigCentral)):bytes.LastIndex(b, []byte(sigEnd))])
	binary.LittleEndian.PutUint32(bCd[42:], uint32(30+1)) // A's local header is 30 bytes + name "A"
	q := append(bytes.Clone(quoted[:qEocd]), bCd...)
	qEnd := bytes.Clone(quoted[qEocd:])
	binary.LittleEndian.PutUint16(qEnd[8:], 2)
	binary.LittleEndian.PutUint16(qEnd[10:], 2)
	binary.LittleEndian.PutUint32(qEnd[12:], uint32(qEocd-qCd+len(bCd)))
	q = append(q, qEnd...)

	for name, data := range map[string][]byte{"full overlap": full, "quoted": q} {
		t.Run(name, func(t *testing.T) {
			calls := 0
			_, err := Walk(data, Limits{MaxRatio: -1}, func(Entry, []byte) error { calls++; return nil })
			if !errors.Is(err, ErrBomb) || !strings.Contains(err.Error(), "overlapping-file zip bomb") {
				t.Fatalf("err %v, want the overlap reported", err)
			}
			if calls != 0 {
				t.Errorf("%d members passed before the overlap was seen", calls)
			}
			t.Logf("%d bytes: %v", len(data), err)
		})
	}
}

// TestBomb7z: 300 MiB of zeros in a 67 KB 7z (LZMA2, made by 7-Zip):
// stopped by its declared size, by the ratio, or by the total.
func TestBomb7z(t *testing.T) {
	data := readTestdata(t, "zeros-300M.7z")
	for _, c := range []struct {
		lim Limits
		msg string
	}{
		{Limits{}, "(folder 0): size 314572800 over 67108864 bytes"}, // the header's size, before decoding
		{Limits{MaxEntrySize: 1 << 30}, "ratio"},
		{Limits{MaxEntrySize: 1 << 30, MaxRatio: -1, MaxTotal: 32 << 20}, "total unpacked"},
	} {
		var err error
		peak, total := peakHeap(func() {
			_, err = Walk(data, c.lim, func(Entry, []byte) error { return nil })
		})
		if !errors.Is(err, ErrBomb) || !strings.Contains(err.Error(), c.msg) {
			t.Fatalf("%+v: err %v, want ErrBomb with %q", c.lim, err, c.msg)
		}
		t.Logf("%v; peak heap %.1f MiB, allocated %.1f MiB", err, float64(peak)/(1<<20), float64(total)/(1<<20))
	}
}
