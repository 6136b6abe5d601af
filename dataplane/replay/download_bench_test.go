package replay

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/openutm/utm/dataplane/engine"
	"github.com/openutm/utm/dataplane/internal/testpcap"
	"github.com/openutm/utm/signatures/bundle"
)

// BenchmarkDownload1MB: one 1 MB HTTP download (random bytes, 1448-byte
// segments) through the engine with no inspection, the default bundle, and
// the default bundle with all of ET Open: where full inspection spends its
// time on file transfers (MB/s of body). One engine per mode serves every
// iteration, as a worker serves one download after another: iteration i
// replays the trace 31 s after iteration i-1, when the previous flow has
// expired (closed TCP: 30 s) and its file buffer waits on the engine's
// free list (kept a minute).
func BenchmarkDownload1MB(b *testing.B) { benchDownload(b, 1<<20) }

// BenchmarkDownload64MB: as Download1MB with a file four times the scan
// limit (MaxScanSize, 16 MiB): its first 16 MiB are kept and scanned, all
// of it hashed.
func BenchmarkDownload64MB(b *testing.B) { benchDownload(b, 64<<20) }

func benchDownload(b *testing.B, size int) {
	body := make([]byte, size)
	rand.New(rand.NewSource(1)).Read(body)
	tr := testpcap.NewTrace(start)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:80").Handshake()
	c.Client([]byte("GET /file.bin HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"), 0)
	c.Server([]byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", len(body))), 0)
	c.Server(body, 1448)
	c.Close()
	pkts := tr.Sorted()
	def, err := bundle.Default()
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"none", "default", "et"} {
		b.Run(mode, func(b *testing.B) {
			bn := *def
			if mode == "et" {
				bn.Rules = etRules(b, -1)
			}
			e := engine.New(engine.Config{InspectNone: mode == "none"}, &bn)
			run := func(i int) {
				shift := time.Duration(i) * 31 * time.Second
				for _, p := range pkts {
					e.Process(p.TS.Add(shift), p.Data)
				}
			}
			run(0) // parse and build the automata outside the timing
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				run(i + 1)
			}
		})
	}
}
