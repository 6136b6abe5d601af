package stream

import (
	"bytes"
	"testing"
)

type collector struct{ b []byte }

func (c *collector) add(p []byte) { c.b = append(c.b, p...) }

func TestReassembly(t *testing.T) {
	for _, c := range []struct {
		name string
		isn  uint32
		segs []struct {
			off  uint32
			data string
		}
		want string
	}{
		{"in order", 100, segsOf(0, "abc", 3, "def"), "abcdef"},
		{"out of order", 100, segsOf(3, "def", 0, "abc", 6, "g"), "abcdefg"},
		{"retransmit", 100, segsOf(0, "abc", 0, "abc", 3, "d"), "abcd"},
		{"overlap first wins", 100, segsOf(0, "abc", 1, "XYZe"), "abcZe"},
		{"conflicting ooo copies", 100, segsOf(4, "ee", 4, "XX", 0, "abcd"), "abcdee"},
		{"wraparound", 0xfffffffe, segsOf(2, "cd", 0, "ab", 4, "e"), "abcde"},
	} {
		var s Stream
		s.Init(c.isn, 1<<16)
		var got collector
		for _, sg := range c.segs {
			s.Push(c.isn+sg.off, []byte(sg.data), got.add)
		}
		if string(got.b) != c.want {
			t.Errorf("%s: delivered %q, want %q", c.name, got.b, c.want)
		}
		if s.Buffered() != 0 {
			t.Errorf("%s: %d bytes left buffered", c.name, s.Buffered())
		}
	}
}

func segsOf(v ...any) []struct {
	off  uint32
	data string
} {
	var out []struct {
		off  uint32
		data string
	}
	for i := 0; i < len(v); i += 2 {
		out = append(out, struct {
			off  uint32
			data string
		}{uint32(v[i].(int)), v[i+1].(string)})
	}
	return out
}

func TestOverflow(t *testing.T) {
	var s Stream
	s.Init(0, 4)
	var got collector
	if r := s.Push(10, []byte("12345"), got.add); r != Overflow {
		t.Fatalf("over the cap: %v, want Overflow", r)
	}
	if r := s.Push(10, []byte("1234"), got.add); r != OutOfOrder {
		t.Fatalf("at the cap: %v, want OutOfOrder", r)
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
}

// FuzzStream checks that whatever the arrival order, every byte is
// delivered once, in order, as the first copy of it that arrived says.
func FuzzStream(f *testing.F) {
	f.Add([]byte("hello world, this is a stream"), []byte{3, 0, 7, 1, 2, 9})
	f.Fuzz(func(t *testing.T, data []byte, order []byte) {
		if len(data) == 0 {
			return
		}
		var s Stream
		s.Init(1000, 1<<20)
		var got collector
		// cut data into segments at points drawn from order, send them in
		// a shuffled order, then everything once more in order.
		var cuts []int
		for _, o := range order {
			cuts = append(cuts, int(o)%len(data))
		}
		cuts = append(cuts, 0, len(data))
		for i := 0; i+1 < len(cuts); i++ {
			a, b := min(cuts[i], cuts[i+1]), max(cuts[i], cuts[i+1])
			s.Push(1000+uint32(a), data[a:b], got.add)
		}
		s.Push(1000, data, got.add)
		if !bytes.Equal(got.b, data) {
			t.Fatalf("delivered %q, want %q", got.b, data)
		}
	})
}
