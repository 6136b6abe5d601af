package stream

import (
	"bytes"
	"testing"
)

// collector records what a stream delivers; a gap shows as '~' per byte
// in seen, so tests can read the order of data and gaps.
type collector struct {
	b    []byte // data only
	seen []byte // data and gaps
	gap  int
}

func (c *collector) Data(p []byte) { c.b = append(c.b, p...); c.seen = append(c.seen, p...) }
func (c *collector) Gap(n int) {
	c.gap += n
	c.seen = append(c.seen, bytes.Repeat([]byte{'~'}, n)...)
}

type discard struct{}

func (discard) Data([]byte) {}
func (discard) Gap(int)     {}

type sg struct {
	off  uint32
	data string
}

func cfg(max int) Config { return Config{MaxBuffered: max} }

func TestReassembly(t *testing.T) {
	for _, c := range []struct {
		name      string
		isn       uint32
		segs      []sg
		want      string
		conflicts uint64
	}{
		{"in order", 100, []sg{{0, "abc"}, {3, "def"}}, "abcdef", 0},
		{"out of order", 100, []sg{{3, "def"}, {0, "abc"}, {6, "g"}}, "abcdefg", 0},
		{"retransmit", 100, []sg{{0, "abc"}, {0, "abc"}, {3, "d"}}, "abcd", 0},
		{"partial retransmit", 100, []sg{{0, "abc"}, {1, "bcde"}}, "abcde", 0},
		{"overlap with delivered, other bytes: dropped whole", 100, []sg{{0, "abc"}, {1, "XYZe"}, {3, "e"}}, "abce", 1},
		{"retransmission with other bytes", 100, []sg{{0, "abcdef"}, {0, "abcXef"}, {6, "g"}}, "abcdefg", 1},
		{"same ooo bytes twice", 100, []sg{{4, "ee"}, {4, "ee"}, {0, "abcd"}}, "abcdee", 0},
		{"conflicting ooo copies", 100, []sg{{4, "ee"}, {4, "XX"}, {0, "abcd"}}, "abcdee", 1},
		{"ooo overlapping ooo with other bytes", 100, []sg{{4, "ee"}, {3, "XXXf"}, {0, "abc"}, {3, "deef"}}, "abcdeef", 1},
		{"in order over buffered with other bytes", 100, []sg{{4, "ee"}, {8, "i"}, {0, "abcdXXghYj"}, {0, "abcdeeghij"}}, "abcdeeghij", 1},
		{"in order over buffered, same bytes", 100, []sg{{4, "ee"}, {8, "i"}, {0, "abcdeeghij"}}, "abcdeeghij", 0},
		{"in order bridging runs", 100, []sg{{2, "c"}, {5, "f"}, {0, "abcdefg"}}, "abcdefg", 0},
		{"tiny segments in reverse", 100, []sg{{5, "f"}, {4, "e"}, {3, "d"}, {2, "c"}, {1, "b"}, {0, "a"}}, "abcdef", 0},
		{"wraparound", 0xfffffffe, []sg{{2, "cd"}, {0, "ab"}, {4, "e"}}, "abcde", 0},
		{"wraparound ooo across zero", 0xfffffff0, []sg{{0x10, "q"}, {0x0e, "op"}, {0, "abcdefghijklmn"}}, "abcdefghijklmnopq", 0},
		{"wraparound history conflict", 0xfffffffe, []sg{{0, "abcd"}, {1, "bXd"}}, "abcd", 1},
	} {
		var s Stream
		s.Init(c.isn, cfg(1<<16))
		var got collector
		for _, g := range c.segs {
			s.Push(c.isn+g.off, []byte(g.data), &got)
		}
		if string(got.b) != c.want {
			t.Errorf("%s: delivered %q, want %q", c.name, got.b, c.want)
		}
		if s.Buffered() != 0 {
			t.Errorf("%s: %d bytes left buffered", c.name, s.Buffered())
		}
		if s.Next() != c.isn+uint32(len(c.want)) {
			t.Errorf("%s: Next %d, want %d", c.name, s.Next(), c.isn+uint32(len(c.want)))
		}
		if s.Stats().Conflicts != c.conflicts {
			t.Errorf("%s: %d conflicts, want %d", c.name, s.Stats().Conflicts, c.conflicts)
		}
	}
}

func TestResults(t *testing.T) {
	var s Stream
	s.Init(1000, cfg(10))
	var got collector
	for i, st := range []struct {
		seq  uint32
		data string
		want Result
	}{
		{1000, "", Retransmit},
		{1005, "fgh", OutOfOrder},
		{1005, "fgh", Retransmit},        // already buffered
		{1005, "fgX", Conflict},          // buffered with other bytes
		{1004, "efghijklmn", OutOfOrder}, // 3 held + 7 new = 10: at the cap
		{1015, "p", Overflow},            // 11 > 10: drop, the sender retransmits
		{1000, "abcd", InOrder},          // delivers a..n
		{999, "Xa", Retransmit},          // before the stream and delivered: nothing to compare the X with
		{1000, "abcd", Retransmit},       // same bytes again
		{1000, "abXd", Conflict},         // delivered, in the history, other bytes
	} {
		if r := s.Push(st.seq, []byte(st.data), &got); r != st.want {
			t.Fatalf("step %d (%d %q): %v, want %v", i, st.seq, st.data, r, st.want)
		}
	}
	if string(got.b) != "abcdefghijklmn" {
		t.Fatalf("delivered %q", got.b)
	}
	want := Stats{InOrder: 1, OutOfOrder: 2, Retransmit: 4, Overflow: 1, Conflicts: 2}
	if s.Stats() != want {
		t.Fatalf("stats %+v, want %+v", s.Stats(), want)
	}
}

// TestHistoryWindow: a changed retransmission is caught while the bytes are
// within the last History delivered; older bytes cannot be compared.
func TestHistoryWindow(t *testing.T) {
	var s Stream
	s.Init(0, cfg(1<<16))
	data := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB
	s.Push(0, data, discard{})
	recent := append([]byte(nil), data[len(data)-100:]...)
	recent[50] ^= 0xff
	if r := s.Push(uint32(len(data)-100), recent, discard{}); r != Conflict {
		t.Fatalf("changed retransmission of recent bytes: %v, want conflict", r)
	}
	edge := append([]byte(nil), data[len(data)-History:len(data)-History+10]...)
	edge[0] ^= 0xff
	if r := s.Push(uint32(len(data)-History), edge, discard{}); r != Conflict {
		t.Fatalf("changed byte at the oldest kept offset: %v, want conflict", r)
	}
	old := append([]byte(nil), data[:100]...)
	old[0] ^= 0xff
	if r := s.Push(0, old, discard{}); r != Retransmit {
		t.Fatalf("changed retransmission of bytes older than the history: %v, want retransmit", r)
	}
	// A copy straddling the window's start: the part in the window is compared.
	st := append([]byte(nil), data[len(data)-History-5:len(data)-History+5]...)
	if r := s.Push(uint32(len(data)-History-5), st, discard{}); r != Retransmit {
		t.Fatalf("same bytes straddling the window: %v", r)
	}
	st[9] ^= 1
	if r := s.Push(uint32(len(data)-History-5), st, discard{}); r != Conflict {
		t.Fatalf("changed byte inside the window of a straddling copy: %v", r)
	}
}

func TestNoHistory(t *testing.T) {
	var s Stream
	s.Init(0, Config{MaxBuffered: 100, NoHistory: true})
	s.Push(0, []byte("abc"), discard{})
	if r := s.Push(0, []byte("aXc"), discard{}); r != Retransmit {
		t.Fatalf("without history a changed retransmission is %v, want retransmit", r)
	}
}

// TestAckedGap: the receiver acknowledged bytes the stream never saw
// (the engine failed open): they are declared a gap, buffered bytes after
// them are delivered, and nothing stalls.
func TestAckedGap(t *testing.T) {
	var s Stream
	s.Init(0, cfg(100))
	var got collector
	s.Push(0, []byte("abc"), &got)
	s.Push(6, []byte("ghi"), &got)     // 3..5 went past the engine
	s.Push(12, []byte("mn"), &got)     // 9..11 too
	if n := s.Acked(2, &got); n != 0 { // behind next: nothing
		t.Fatalf("Acked behind next skipped %d", n)
	}
	if n := s.Acked(8, &got); n != 3 || string(got.seen) != "abc~~~ghi" {
		t.Fatalf("Acked(8) skipped %d, stream %q", n, got.seen)
	}
	// An acknowledgement past everything seen skips only up to the highest
	// byte seen.
	if n := s.Acked(1000, &got); n != 3 || string(got.seen) != "abc~~~ghi~~~mn" || s.Next() != 14 {
		t.Fatalf("Acked(1000) skipped %d, stream %q, next %d", n, got.seen, s.Next())
	}
	if st := s.Stats(); st.Gaps != 2 || st.GapBytes != 6 {
		t.Fatalf("stats %+v", st)
	}
	// After a gap the stream goes on in order.
	s.Push(14, []byte("op"), &got)
	if string(got.b) != "abcghimnop" {
		t.Fatalf("delivered %q", got.b)
	}
	// A late copy of gap bytes is behind next: not delivered again.
	if r := s.Push(3, []byte("XYZ"), &got); r != Retransmit {
		t.Fatalf("late copy of gap bytes: %v", r)
	}
}

func TestFlushDeclaresHoles(t *testing.T) {
	var s Stream
	s.Init(0, cfg(100))
	var got collector
	s.Push(0, []byte("ab"), &got)
	s.Push(4, []byte("ef"), &got)
	s.Push(8, []byte("i"), &got)
	if n := s.Flush(&got); n != 4 || string(got.seen) != "ab~~ef~~i" || s.Buffered() != 0 {
		t.Fatalf("Flush skipped %d, stream %q, buffered %d", n, got.seen, s.Buffered())
	}
	if n := s.Flush(&got); n != 0 {
		t.Fatalf("second Flush skipped %d", n)
	}
}

// TestOverflowTakesNothing: a full buffer refuses the segment (the engine
// drops the packet) and takes it once the hole is filled.
func TestOverflowTakesNothing(t *testing.T) {
	var s Stream
	s.Init(0, cfg(4))
	var got collector
	if r := s.Push(2, []byte("cdef"), &got); r != OutOfOrder {
		t.Fatal(r)
	}
	if r := s.Push(6, []byte("g"), &got); r != Overflow {
		t.Fatalf("%v, want overflow", r)
	}
	s.Push(0, []byte("ab"), &got)
	if r := s.Push(6, []byte("g"), &got); r != InOrder || string(got.b) != "abcdefg" {
		t.Fatalf("%v, delivered %q", r, got.b)
	}
}

func TestBudget(t *testing.T) {
	b := &Budget{Max: History + pageSize}
	var s1, s2 Stream
	s1.Init(0, Config{MaxBuffered: 1 << 20, Budget: b})
	s2.Init(0, Config{MaxBuffered: 1 << 20, Budget: b})
	s1.Push(0, []byte("a"), discard{}) // history ring
	if b.Used() != History {
		t.Fatalf("used %d", b.Used())
	}
	if r := s1.Push(10, []byte("k"), discard{}); r != OutOfOrder { // one page
		t.Fatal(r)
	}
	if r := s2.Push(10, []byte("k"), discard{}); r != Overflow {
		t.Fatalf("over the budget: %v, want overflow", r)
	}
	s2.Push(0, []byte("a"), discard{}) // no ring left: counted, stream goes on
	if s2.Stats().NoHistory != 1 || s2.Next() != 1 {
		t.Fatalf("stats %+v", s2.Stats())
	}
	s1.Reset()
	s2.Reset()
	if b.Used() != 0 {
		t.Fatalf("after Reset the budget still counts %d bytes", b.Used())
	}
}

func TestLargeOutOfOrderSegment(t *testing.T) {
	var s Stream
	s.Init(0, cfg(1<<20))
	big := bytes.Repeat([]byte("0123456789"), 1000) // 10000 bytes: five pages
	var got collector
	if r := s.Push(10, big, &got); r != OutOfOrder || s.Buffered() != len(big) {
		t.Fatalf("%v, buffered %d", r, s.Buffered())
	}
	s.Push(0, []byte("abcdefghij"), &got)
	if want := append([]byte("abcdefghij"), big...); !bytes.Equal(got.b, want) || s.Buffered() != 0 {
		t.Fatalf("delivered %d bytes, buffered %d", len(got.b), s.Buffered())
	}
}

func TestResetReleases(t *testing.T) {
	var s Stream
	s.Init(0, cfg(100))
	s.Push(5, []byte("xyz"), discard{})
	s.Reset()
	if s.Buffered() != 0 {
		t.Fatal("Reset kept buffered bytes")
	}
	var got collector
	s.Push(0, []byte("abcde"), &got)
	s.Push(5, []byte("fgh"), &got)
	if string(got.b) != "abcdefgh" {
		t.Fatalf("after Reset delivered %q", got.b)
	}
}

func TestInOrderAllocs(t *testing.T) {
	var s Stream
	s.Init(0, cfg(1<<16))
	data := make([]byte, 1400)
	seq := uint32(0)
	var r discard
	s.Push(seq, data, r) // takes the history ring
	seq += 1400
	if n := testing.AllocsPerRun(200, func() { s.Push(seq, data, r); seq += 1400 }); n != 0 {
		t.Fatalf("in-order Push allocates %v times; want 0", n)
	}
	if n := testing.AllocsPerRun(200, func() { s.Push(seq-1400, data, r) }); n != 0 {
		t.Fatalf("retransmission check allocates %v times; want 0", n)
	}
	// Out of order then filled: pages come from the pool.
	if n := testing.AllocsPerRun(200, func() {
		s.Push(seq+1400, data, r)
		s.Push(seq, data, r)
		seq += 2800
	}); n > 0.1 {
		t.Fatalf("out-of-order Push allocates %v times per round; want ~0 once the pool is warm", n)
	}
}

// FuzzStream sends segments of differing content at arbitrary offsets,
// acknowledgements and a final Flush, and checks every Result and the
// delivered bytes against a reference model of the policy: first data wins;
// a segment that differs from bytes still held (buffered, or delivered and
// within the history) is refused whole; an out-of-order segment over the cap
// is refused whole; acknowledged holes and holes at the end become gaps.
// Each byte is delivered once, in order, and nothing panics.
func FuzzStream(f *testing.F) {
	f.Add(uint32(1000), uint16(1<<15), []byte{3, 4, 0, 0, 3, 1, 7, 2, 2, 1, 5, 3})
	f.Add(uint32(0xfffffff0), uint16(8), []byte{10, 4, 1, 0, 10, 0, 4, 6, 2, 20, 30, 3})
	f.Add(uint32(0), uint16(100), []byte{})
	f.Add(uint32(7), uint16(300), []byte{5, 3, 0, 20, 4, 1, 12, 0, 0x80, 0, 5, 0, 30, 0, 0x81})
	f.Fuzz(func(t *testing.T, isn uint32, maxBuf uint16, prog []byte) {
		var s Stream
		s.Init(isn, cfg(int(maxBuf)))
		var got collector
		const span = 256 + 64
		// ref: variant+1 of the first accepted byte at each offset; 0 =
		// none, -1 = declared a gap.
		var ref [span]int16
		delivered, histStart, high := 0, 0, 0
		advance := func(to int, gapsOK bool) {
			for delivered < span && (delivered < to || ref[delivered] > 0) {
				if ref[delivered] == 0 {
					if !gapsOK {
						t.Fatalf("model: hole at %d", delivered)
					}
					ref[delivered] = -1
					histStart = delivered + 1
				}
				delivered++
			}
		}
		buffered := func() int {
			n := 0
			for j := delivered; j < span; j++ {
				if ref[j] > 0 {
					n++
				}
			}
			return n
		}
		for i := 0; i+3 <= len(prog); i += 3 {
			off := int(prog[i])
			if prog[i+2]&0x80 != 0 {
				to := min(off, high)
				s.Acked(isn+uint32(off), &got)
				advance(to, true)
				continue
			}
			n := int(prog[i+1]) % 64
			variant := int16(prog[i+2] % 4)
			data := make([]byte, n)
			for j := range data {
				data[j] = byte((off+j)*7) + byte(variant)*61
			}
			// The model's verdict.
			want, fresh := Retransmit, 0
			for j := off; j < off+n; j++ {
				held := ref[j] > 0 && (j >= delivered || j >= max(histStart, delivered-History))
				if held && ref[j] != variant+1 {
					want = Conflict
				}
				if j >= delivered && ref[j] == 0 {
					fresh++
				}
			}
			if want != Conflict && fresh > 0 {
				switch {
				case off <= delivered:
					want = InOrder
				case buffered()+fresh > int(maxBuf):
					want = Overflow
				default:
					want = OutOfOrder
				}
			}
			r := s.Push(isn+uint32(off), data, &got)
			if r != want {
				t.Fatalf("segment %d (off %d len %d variant %d, delivered %d): %v, want %v", i/3, off, n, variant, delivered, r, want)
			}
			if r == InOrder || r == OutOfOrder {
				for j := off; j < off+n; j++ {
					if ref[j] == 0 && j >= delivered {
						ref[j] = variant + 1
					}
				}
				high = max(high, off+n)
				advance(delivered, false)
			}
			if s.Buffered() > int(maxBuf) || s.Buffered() != buffered() {
				t.Fatalf("buffered %d, model %d, cap %d", s.Buffered(), buffered(), maxBuf)
			}
		}
		last := delivered
		for j := delivered; j < span; j++ {
			if ref[j] > 0 {
				last = j + 1
			}
		}
		s.Flush(&got)
		advance(last, true)
		var want, seen []byte
		gaps := 0
		for j := 0; j < delivered; j++ {
			if ref[j] < 0 {
				gaps++
				seen = append(seen, '~')
				continue
			}
			b := byte(j*7) + byte(ref[j]-1)*61
			want = append(want, b)
			seen = append(seen, b)
		}
		if !bytes.Equal(got.b, want) || got.gap != gaps || !bytes.Equal(got.seen, seen) {
			t.Fatalf("delivered\n%x (%d gap bytes)\nwant\n%x (%d)", got.seen, got.gap, seen, gaps)
		}
		if s.Next() != isn+uint32(delivered) || s.Buffered() != 0 {
			t.Fatalf("Next %d, want %d; buffered %d", s.Next()-isn, delivered, s.Buffered())
		}
	})
}
