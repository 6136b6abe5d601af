package literal

import (
	"fmt"
	"math/rand"
	"testing"
)

// BenchmarkScan: one scan of buffers of several sizes against 2,000
// random 6-12 byte patterns (one op = one scan).
func BenchmarkScan(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	pats := make([]Pattern, 2000)
	for i := range pats {
		p := make([]byte, 6+r.Intn(7))
		r.Read(p)
		pats[i] = Pattern{Bytes: p, Nocase: i%2 == 0}
	}
	g := NewGroup()
	db, err := g.Compile(pats)
	if err != nil {
		b.Fatal(err)
	}
	s := NewScanner()
	for _, n := range []int{0, 1, 16, 256, 1448} {
		data := make([]byte, n)
		r.Read(data)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for i := 0; i < b.N; i++ {
				if _, err := s.Scan(db, data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
