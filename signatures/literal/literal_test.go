package literal

import (
	"bytes"
	"math/rand"
	"slices"
	"testing"
)

// naive returns the ids of pats that occur in data.
func naive(pats []Pattern, data []byte) []uint32 {
	var out []uint32
	for i, p := range pats {
		d, b := data, p.Bytes
		if p.Nocase {
			d, b = bytes.ToLower(d), bytes.ToLower(b)
		}
		if bytes.Contains(d, b) {
			out = append(out, uint32(i))
		}
	}
	return out
}

// TestScanAgainstNaive: random patterns over a small alphabet with NUL,
// 0xff and both cases, against brute force; several databases in one
// group share a scanner.
func TestScanAgainstNaive(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	alpha := []byte("aAbB\x00\xff-")
	word := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = alpha[r.Intn(len(alpha))]
		}
		return b
	}
	for round := 0; round < 50; round++ {
		g := NewGroup()
		var sets [][]Pattern
		var dbs []*DB
		for k := 0; k < 3; k++ {
			pats := make([]Pattern, 1+r.Intn(40))
			for i := range pats {
				pats[i] = Pattern{Bytes: word(1 + r.Intn(6)), Nocase: r.Intn(2) == 0}
			}
			db, err := g.Compile(pats)
			if err != nil {
				t.Fatal(err)
			}
			sets, dbs = append(sets, pats), append(dbs, db)
		}
		s := NewScanner()
		for n := 0; n < 40; n++ {
			k := r.Intn(len(dbs))
			data := word(r.Intn(100))
			got, err := s.Scan(dbs[k], data)
			if err != nil {
				t.Fatal(err)
			}
			got = slices.Clone(got)
			slices.Sort(got)
			if want := naive(sets[k], data); !slices.Equal(got, want) {
				t.Fatalf("data %q: got %v, want %v", data, got, want)
			}
		}
	}
}
