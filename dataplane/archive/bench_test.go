package archive

import (
	"archive/tar"
	"bytes"
	"fmt"
	"testing"
)

// benchText is 8 MiB of log-like text (compresses about 5:1).
func benchText() []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < 8<<20; i++ {
		fmt.Fprintf(&b, "2026-11-23T09:%02d:%02d host%03d sshd[%d]: Accepted publickey for user%d from 198.18.%d.%d port %d\n",
			i/60%60, i%60, i%97, 1000+i%5000, i%31, i%256, i*7%256, 1024+i%60000)
	}
	return b.Bytes()
}

// BenchmarkWalk reports the throughput of unpacking, in bytes of members
// produced per second, against the baseline of a tar (no decompression).
func BenchmarkWalk(b *testing.B) {
	text := benchText()
	inputs := []struct {
		name string
		data []byte
	}{
		{"tar", mkTar(b, tar.FormatPAX, file{"log.txt", text})},
		{"zip-deflate", mkZip(b, file{"log.txt", text})},
		{"tar.gz", mkGzip(b, "", mkTar(b, tar.FormatPAX, file{"log.txt", text}))},
	}
	for _, in := range inputs {
		b.Run(in.name, func(b *testing.B) {
			st, err := Walk(in.data, Limits{}, func(Entry, []byte) error { return nil })
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(st.Bytes)
			b.ReportAllocs()
			for b.Loop() {
				Walk(in.data, Limits{}, func(Entry, []byte) error { return nil })
			}
		})
	}
}
