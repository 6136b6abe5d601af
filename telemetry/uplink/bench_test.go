package uplink

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/openutm/utm/telemetry/spool"
)

// BenchmarkEndToEnd: alerts per second from Append on the box to stored
// and acked in the monitor's bbolt store, through a real spool file, the
// uplink, the monitor's embedded NATS JetStream and its store.
//
//	live:    8 appenders raise b.N alerts while the uplink sends
//	         (spool with group commit): the sustained rate.
//	backlog: b.N alerts spooled while the monitor was away, then the
//	         uplink starts: how fast a box catches up.
func BenchmarkEndToEnd(b *testing.B) {
	for _, mode := range []string{"live", "backlog"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			m := startMonitor(b, filepath.Join(dir, "monitor"), "127.0.0.1:-1")
			defer m.Close()
			sp, err := spool.Open(filepath.Join(dir, "spool.db"), spool.Options{BoxID: "box-1", Logger: quiet,
				GroupCommit: true, MaxEntries: 1 << 30})
			if err != nil {
				b.Fatal(err)
			}
			defer sp.Close()
			raise := func() {
				var wg sync.WaitGroup
				for g := range 8 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := g; i < b.N; i += 8 {
							e := e2eAlert(i)
							e.Stars = 3
							if err := sp.Append(e); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
			}
			start := func() *Uplink {
				up, err := Start(context.Background(), Config{URL: m.NATSURL(), BoxID: "box-1", Version: "bench",
					Heartbeat: time.Second, Logger: quiet}, sp)
				if err != nil {
					b.Fatal(err)
				}
				return up
			}
			var up *Uplink
			if mode == "backlog" {
				raise()
				b.ResetTimer()
				up = start()
			} else {
				up = start()
				b.ResetTimer()
				raise()
			}
			defer up.Close()
			t0 := time.Now()
			for {
				// The spool first: empty, every alert is in the stream,
				// and a backlog read after it covers them all.
				left := sp.Len()
				n, err := m.Backlog()
				if left == 0 && err == nil && n == 0 {
					break
				}
				if time.Since(t0) > 5*time.Minute {
					b.Fatalf("not delivered: spool %d, backlog %d %v", sp.Len(), n, err)
				}
				time.Sleep(2 * time.Millisecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "alerts/s")
			stored := 0
			for since := uint64(0); ; {
				page, err := m.Alerts(since)
				if err != nil || len(page) == 0 {
					break
				}
				for _, r := range page {
					if r.Event.Alert != nil && r.Event.Alert.SignatureID == 2210001 {
						stored++
					}
				}
				since = page[len(page)-1].Seq
			}
			if stored != b.N {
				b.Fatalf("the store holds %d alerts, want %d", stored, b.N)
			}
		})
	}
}
