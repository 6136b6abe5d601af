package stream

import (
	"bytes"
	"testing"
)

type collector struct{ b []byte }

func (c *collector) add(p []byte) { c.b = append(c.b, p...) }

type sg struct {
	off  uint32
	data string
}

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
		{"overlap with delivered: first wins", 100, []sg{{0, "abc"}, {1, "XYZe"}}, "abcZe", 0},
		{"same ooo bytes twice", 100, []sg{{4, "ee"}, {4, "ee"}, {0, "abcd"}}, "abcdee", 0},
		{"conflicting ooo copies", 100, []sg{{4, "ee"}, {4, "XX"}, {0, "abcd"}}, "abcdee", 1},
		{"ooo overlapping ooo", 100, []sg{{4, "ee"}, {3, "XXXf"}, {0, "abc"}}, "abcXeef", 1},
		{"in order over buffered", 100, []sg{{4, "ee"}, {8, "i"}, {0, "abcdXXghYj"}}, "abcdeeghij", 1},
		{"in order bridging runs", 100, []sg{{2, "c"}, {5, "f"}, {0, "abcdefg"}}, "abcdefg", 0},
		{"wraparound", 0xfffffffe, []sg{{2, "cd"}, {0, "ab"}, {4, "e"}}, "abcde", 0},
		{"wraparound ooo across zero", 0xfffffff0, []sg{{0x10, "q"}, {0x0e, "op"}, {0, "abcdefghijklmn"}}, "abcdefghijklmnopq", 0},
	} {
		var s Stream
		s.Init(c.isn, 1<<16)
		var got collector
		for _, g := range c.segs {
			s.Push(c.isn+g.off, []byte(g.data), got.add)
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
	s.Init(1000, 10)
	var got collector
	for i, st := range []struct {
		seq  uint32
		data string
		want Result
	}{
		{1000, "", Retransmit},
		{1005, "fgh", OutOfOrder},
		{1005, "fgh", Retransmit},        // already buffered
		{1004, "efghijklmn", OutOfOrder}, // 3 held + 7 new = 10: at the cap
		{1015, "p", Overflow},            // 11 > 10
		{1000, "abcd", InOrder},          // delivers a..n
		{999, "Xa", Retransmit},          // already delivered
	} {
		if r := s.Push(st.seq, []byte(st.data), got.add); r != st.want {
			t.Fatalf("step %d (%d %q): %v, want %v", i, st.seq, st.data, r, st.want)
		}
	}
	if string(got.b) != "abcdefghijklmn" {
		t.Fatalf("delivered %q", got.b)
	}
	want := Stats{InOrder: 1, OutOfOrder: 2, Retransmit: 3, Overflow: 1}
	if s.Stats() != want {
		t.Fatalf("stats %+v, want %+v", s.Stats(), want)
	}
}

func TestLargeOutOfOrderSegment(t *testing.T) {
	var s Stream
	s.Init(0, 1<<20)
	big := bytes.Repeat([]byte("0123456789"), 1000) // 10000 bytes: five pages
	var got collector
	if r := s.Push(10, big, got.add); r != OutOfOrder || s.Buffered() != len(big) {
		t.Fatalf("%v, buffered %d", r, s.Buffered())
	}
	s.Push(0, []byte("abcdefghij"), got.add)
	if want := append([]byte("abcdefghij"), big...); !bytes.Equal(got.b, want) || s.Buffered() != 0 {
		t.Fatalf("delivered %d bytes, buffered %d", len(got.b), s.Buffered())
	}
}

func TestResetReleases(t *testing.T) {
	var s Stream
	s.Init(0, 100)
	s.Push(5, []byte("xyz"), func([]byte) {})
	s.Reset()
	if s.Buffered() != 0 {
		t.Fatal("Reset kept buffered bytes")
	}
	var got collector
	s.Push(0, []byte("abcde"), got.add)
	s.Push(5, []byte("fgh"), got.add)
	if string(got.b) != "abcdefgh" {
		t.Fatalf("after Reset delivered %q", got.b)
	}
}

func TestInOrderAllocs(t *testing.T) {
	var s Stream
	s.Init(0, 1<<16)
	data := make([]byte, 1400)
	seq := uint32(0)
	fn := func([]byte) {}
	if n := testing.AllocsPerRun(200, func() { s.Push(seq, data, fn); seq += 1400 }); n != 0 {
		t.Fatalf("in-order Push allocates %v times; want 0", n)
	}
	// Out of order then filled: pages come from the pool.
	if n := testing.AllocsPerRun(200, func() {
		s.Push(seq+1400, data, fn)
		s.Push(seq, data, fn)
		seq += 2800
	}); n > 0.1 {
		t.Fatalf("out-of-order Push allocates %v times per round; want ~0 once the pool is warm", n)
	}
}

// FuzzStream sends segments of differing content at arbitrary offsets and
// checks the delivered bytes against a reference: for every offset, the
// byte of the first accepted segment that covered it, delivered up to the
// first hole.
func FuzzStream(f *testing.F) {
	f.Add(uint32(1000), uint16(1<<15), []byte{3, 4, 0, 0, 3, 1, 7, 2, 2, 1, 5, 3})
	f.Add(uint32(0xfffffff0), uint16(8), []byte{10, 4, 1, 0, 10, 0, 4, 6, 2, 20, 30, 3})
	f.Add(uint32(0), uint16(100), []byte{})
	f.Fuzz(func(t *testing.T, isn uint32, maxBuf uint16, prog []byte) {
		var s Stream
		s.Init(isn, int(maxBuf))
		var got collector
		const span = 256 + 64
		var ref [span]int16 // variant+1 of the first accepted byte at each offset, 0 = none
		delivered := 0
		for i := 0; i+3 <= len(prog); i += 3 {
			off := int(prog[i])
			n := int(prog[i+1]) % 64
			variant := prog[i+2] % 4
			data := make([]byte, n)
			for j := range data {
				data[j] = byte((off+j)*7) + variant*61
			}
			r := s.Push(isn+uint32(off), data, got.add)
			if r == Overflow {
				if off <= delivered {
					t.Fatalf("in-order segment at %d (next %d) overflowed", off, delivered)
				}
				continue
			}
			for j := 0; j < n; j++ {
				if ref[off+j] == 0 {
					ref[off+j] = int16(variant) + 1
				}
			}
			for delivered < span && ref[delivered] != 0 {
				delivered++
			}
			if s.Buffered() > int(maxBuf) {
				t.Fatalf("buffered %d over the cap %d", s.Buffered(), maxBuf)
			}
		}
		want := make([]byte, delivered)
		for j := range want {
			want[j] = byte(j*7) + byte(ref[j]-1)*61
		}
		if !bytes.Equal(got.b, want) {
			t.Fatalf("delivered\n%x\nwant\n%x", got.b, want)
		}
		if s.Next() != isn+uint32(delivered) {
			t.Fatalf("Next %d, want %d", s.Next()-isn, delivered)
		}
	})
}
