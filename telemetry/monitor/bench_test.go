package monitor

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/openutm/utm/telemetry/alert"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkStoreAdd: one alert committed (fsync included) with its
// index entries: the monitor's cost per alert.
func BenchmarkStoreAdd(b *testing.B) {
	st, err := openStore(filepath.Join(b.TempDir(), "monitor.db"), false)
	if err != nil {
		b.Fatal(err)
	}
	defer st.close()
	now := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev := eicar("bench", fmt.Sprint("b-", i), alert.Stars(1+i%3), "sig")
		if _, _, err := st.add(ev, now); err != nil {
			b.Fatal(err)
		}
	}
}

var benchStore *store

// benchFill is a store of 50,000 alerts of 10 boxes over 6 months, 1 in 50
// of them ★★★.
func benchFill(b *testing.B) *store {
	if benchStore != nil {
		return benchStore
	}
	st, err := openStore(filepath.Join(b.TempDir(), "monitor.db"), false)
	if err != nil {
		b.Fatal(err)
	}
	st.db.NoSync = true
	start := time.Now().Add(-183 * 24 * time.Hour)
	for i := 0; i < 50000; i++ {
		stars := alert.Stars(1 + i%2)
		if i%50 == 0 {
			stars = 3
		}
		ev := eicar(fmt.Sprint("box-", i%10), fmt.Sprint("f-", i), stars, "sig")
		at := start.Add(time.Duration(i) * (183 * 24 * time.Hour / 50000))
		ev.Timestamp = alert.Timestamp(at)
		st.add(ev, at)
	}
	benchStore = st
	return st
}

// BenchmarkPortalFilter: the first page (50) of ★★★ alerts of one box in
// a 50,000-alert store, through the index, against the baseline of
// decoding every record and filtering (what the store did before the
// index). Report the ratio index/scan.
func BenchmarkPortalFilter(b *testing.B) {
	st := benchFill(b)
	f := Filter{Stars: 3, Box: "box-0"}
	b.Run("index", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			recs, _, _ := st.query(f, 0, 50)
			if len(recs) != 50 {
				b.Fatal(len(recs))
			}
		}
	})
	b.Run("scan", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			var out []Record
			st.db.View(func(tx *bolt.Tx) error {
				c := tx.Bucket(bucketAlerts).Cursor()
				for k, v := c.Last(); k != nil && len(out) < 50; k, v = c.Prev() {
					var r Record
					if json.Unmarshal(v, &r) == nil && r.Event.Stars == 3 && r.Event.BoxID == "box-0" {
						out = append(out, r)
					}
				}
				return nil
			})
			if len(out) != 50 {
				b.Fatal(len(out))
			}
		}
	})
}

// BenchmarkChart: the dashboard's 7-day, 28-bar histogram and the alert
// list's 6-month one, from index keys only.
func BenchmarkChart(b *testing.B) {
	st := benchFill(b)
	now := time.Now()
	for _, span := range []time.Duration{7 * 24 * time.Hour, 183 * 24 * time.Hour} {
		b.Run(span.String(), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				st.histogram(Filter{From: now.Add(-span), To: now}, 28)
			}
		})
	}
}

// BenchmarkEndToEnd: alerts published to JetStream (async, as a box's
// uplink does) until all are stored and acked, through the embedded NATS
// and the batching store writer. Reports alerts/s.
func BenchmarkEndToEnd(b *testing.B) {
	m, err := Start(Config{DataDir: b.TempDir(), NATSListen: "127.0.0.1:-1", HTTPListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	nc, err := nats.Connect(m.NATSURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream(nats.PublishAsyncMaxPending(4096))
	evs := make([][]byte, b.N)
	for i := range evs {
		evs[i], _ = json.Marshal(eicar("e2e", fmt.Sprint("e-", i), alert.Stars(1+i%3), "sig"))
	}
	b.ResetTimer()
	start := time.Now()
	for i, ev := range evs {
		if _, err := js.PublishAsync(alert.AlertSubject("e2e"), ev, nats.MsgId(fmt.Sprint("e-", i))); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	for {
		n, err := m.Backlog()
		if err == nil && n == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	if recs, _, _ := m.Query(Filter{}, 0, b.N+1); len(recs) != b.N {
		b.Fatalf("%d stored, want %d", len(recs), b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "alerts/s")
}

// BenchmarkHeartbeats1000Boxes: one round of heartbeats from 1,000 boxes
// through NATS into the registry (op = one round). At one heartbeat per
// box every 10 s the monitor spends ns/op per 10 s on them.
func BenchmarkHeartbeats1000Boxes(b *testing.B) {
	m, err := Start(Config{DataDir: b.TempDir(), NATSListen: "127.0.0.1:-1", HTTPListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	nc, err := nats.Connect(m.NATSURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	hbs := make([][]byte, 1000)
	for i := range hbs {
		hbs[i], _ = json.Marshal(alert.Heartbeat{BoxID: fmt.Sprint("hb-", i), Version: "1.0", UptimeS: 100, Time: time.Now(),
			Counters: map[string]uint64{"packets": 123456, "drops": 1, "bypassed": 0, "alerts_1": 5, "alerts_2": 2, "alerts_3": 0}})
	}
	last := func() time.Time {
		var t time.Time
		m.st.mu.Lock()
		if bx := m.st.boxes["hb-999"]; bx != nil {
			t = bx.LastHeartbeat
		}
		m.st.mu.Unlock()
		return t
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		before := last()
		for j, hb := range hbs {
			nc.Publish(alert.HeartbeatSubject(fmt.Sprint("hb-", j)), hb)
		}
		nc.Flush()
		for !last().After(before) {
			time.Sleep(100 * time.Microsecond)
		}
	}
	b.StopTimer()
	if n := len(m.Boxes()); n != 1000 {
		b.Fatalf("%d boxes", n)
	}
}
