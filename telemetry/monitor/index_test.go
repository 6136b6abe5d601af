package monitor

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/openutm/utm/telemetry/alert"
	bolt "go.etcd.io/bbolt"
)

var t0 = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// fill stores n varied events over 200 days in a fresh store.
func fill(t *testing.T, st *store, n int) []Record {
	t.Helper()
	var all []Record
	for i := 0; i < n; i++ {
		at := t0.Add(time.Duration(i) * (200 * 24 * time.Hour / time.Duration(n)))
		ev := eicar(fmt.Sprintf("box-%d", i%3), fmt.Sprintf("e-%d", i), alert.Stars(1+(i/3)%3), "sig")
		ev.Timestamp = alert.Timestamp(at)
		switch i % 4 {
		case 0: // av: eicar() has a threat
		case 1:
			ev.FileInfo, ev.Intel = nil, &alert.Intel{Indicator: "c2.example", Kind: "domain"}
		case 2:
			ev.FileInfo = nil
		case 3:
			ev.FileInfo, ev.Engine = nil, &alert.Engine{Reason: "inspection bypassed"}
		}
		rec, added, err := st.add(ev, at.Add(time.Second))
		if err != nil || !added {
			t.Fatal(err)
		}
		all = append(all, rec)
	}
	return all
}

// want filters all like f should, newest first.
func want(all []Record, f Filter) []uint64 {
	var out []uint64
	for i := len(all) - 1; i >= 0; i-- {
		r := all[i]
		ts := r.Event.Timestamp.Time()
		if (f.Stars == 0 || int(r.Event.Stars) == f.Stars) && int(r.Event.Stars) >= f.MinStars && (f.Box == "" || r.Event.BoxID == f.Box) &&
			(f.Kind == "" || KindOf(r.Event) == f.Kind) && (f.From.IsZero() || !ts.Before(f.From)) && (f.To.IsZero() || ts.Before(f.To)) {
			out = append(out, r.Seq)
		}
	}
	return out
}

func seqs(recs []Record) []uint64 {
	var out []uint64
	for _, r := range recs {
		out = append(out, r.Seq)
	}
	return out
}

// TestQueryFilters: every filter combination returns exactly what a scan
// of all records would, newest first, with paging; the histogram counts
// match; a store written before the index gets one at open.
func TestQueryFilters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "monitor.db")
	st, err := openStore(path, false)
	if err != nil {
		t.Fatal(err)
	}
	st.db.NoSync = true // test data only
	all := fill(t, st, 600)
	st.db.NoSync = false
	// Drop the index as an old store would lack it; reopening rebuilds it.
	st.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketIndex) })
	st.close()
	if st, err = openStore(path, false); err != nil {
		t.Fatal(err)
	}
	defer st.close()

	mid, late := t0.Add(50*24*time.Hour), t0.Add(120*24*time.Hour)
	filters := []Filter{{}, {Stars: 3}, {MinStars: 2}, {Box: "box-1"}, {Kind: KindAV}, {Kind: KindCNC}, {Kind: KindHealth}, {Kind: KindIPS},
		{From: mid, To: late}, {Stars: 3, Box: "box-0"}, {Box: "box-2", Kind: KindCNC, From: mid}, {Stars: 2, To: mid},
		{Box: "nobody"}, {Stars: 1, Kind: KindHealth, From: mid, To: late}}
	for _, f := range filters {
		w := want(all, f)
		got, more, err := st.query(f, 0, 10000)
		if err != nil || more || !slices.Equal(seqs(got), w) {
			t.Errorf("%+v: got %d records (more %v, err %v), want %d; %v vs %v", f, len(got), more, err, len(w), seqs(got)[:min(5, len(got))], w[:min(5, len(w))])
			continue
		}
		if len(w) > 25 {
			page, more, _ := st.query(f, 20, 5)
			if !more || !slices.Equal(seqs(page), w[20:25]) {
				t.Errorf("%+v: page 20..25 = %v, want %v", f, seqs(page), w[20:25])
			}
		}
		if !f.From.IsZero() && !f.To.IsZero() {
			bins, _ := st.histogram(f, 7)
			n := 0
			for _, b := range bins {
				n += b.Total()
			}
			if n != len(w) {
				t.Errorf("%+v: histogram counts %d, want %d", f, n, len(w))
			}
		}
	}
	if len(want(all, Filter{Kind: KindAV})) != 150 || len(want(all, Filter{Stars: 3, Box: "box-0"})) == 0 {
		t.Fatal("test data does not cover the filters")
	}
	r, ok := st.get(all[7].Seq)
	if !ok || r.Event.ID != "e-7" {
		t.Fatalf("get: %+v %v", r, ok)
	}
}

// TestSweep: the sweep deletes exactly the records filed before the
// cutoff, their index entries and ids (so the same alert may be stored
// again), and nothing else.
func TestSweep(t *testing.T) {
	st, err := openStore(filepath.Join(t.TempDir(), "monitor.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	st.db.NoSync = true // test data only: 6,000 fsyncs are slow
	all := fill(t, st, 6000)
	st.db.NoSync = false
	cutoff := t0.Add(180 * 24 * time.Hour) // 5,400: more than one sweep transaction
	old := want(all, Filter{To: cutoff})
	keep := want(all, Filter{From: cutoff})
	n, err := st.sweep(cutoff)
	if err != nil || n != len(old) || n < 5001 {
		t.Fatalf("swept %d (%v), want %d", n, err, len(old))
	}
	got, _, _ := st.query(Filter{}, 0, 100000)
	if !slices.Equal(seqs(got), keep) {
		t.Fatalf("%d records left, want %d", len(got), len(keep))
	}
	for _, f := range []Filter{{Stars: 3}, {Box: "box-1"}} {
		g, _, _ := st.query(f, 0, 100000)
		for _, r := range g {
			if r.Event.Timestamp.Time().Before(cutoff) {
				t.Fatalf("index %+v still lists swept seq %d", f, r.Seq)
			}
		}
		if len(g) == 0 {
			t.Fatalf("index %+v lost kept records", f)
		}
	}
	st.db.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket(bucketIDs).Stats().KeyN; n != len(keep) {
			t.Errorf("%d ids left, want %d", n, len(keep))
		}
		if n := tx.Bucket(bucketIndex).Stats().KeyN; n != 3*len(keep) {
			t.Errorf("%d index entries left, want %d", n, 3*len(keep))
		}
		return nil
	})
	if _, added, _ := st.add(all[0].Event, t0); !added {
		t.Error("a swept alert cannot be stored again")
	}
	if n, _ := st.sweep(cutoff); n != 1 {
		t.Errorf("second sweep deleted %d, want 1", n)
	}
}

// TestRetention: the monitor with an injected clock keeps alerts for
// Config.Retention and the sweep deletes older ones.
func TestRetention(t *testing.T) {
	var logs syncBuf
	now := time.Now()
	m, err := Start(Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:-1", HTTPListen: "127.0.0.1:0", Retention: 24 * time.Hour,
		Now: func() time.Time { return now }, Logger: testLogger(&logs)})
	if err == nil {
		clients.Store(m.PortalURL(), login(t, m, &logs))
	}
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	nc, err := nats.Connect(m.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream()
	for i, age := range []time.Duration{49 * time.Hour, 25 * time.Hour, 23 * time.Hour, time.Minute} {
		ev := eicar("r", fmt.Sprint("r-", i), 3, "sig")
		ev.Timestamp = alert.Timestamp(now.Add(-age))
		publish(t, js, "r", ev, ev.ID)
	}
	settle(t, m)
	if n, err := m.Sweep(); n != 2 || err != nil {
		t.Fatalf("swept %d (%v), want 2", n, err)
	}
	recs, _, _ := m.Query(Filter{}, 0, 10)
	if got := seqs(recs); len(got) != 2 || recs[0].Event.ID != "r-3" || recs[1].Event.ID != "r-2" {
		t.Fatalf("kept %+v", recs)
	}
	if !strings.Contains(logs.String(), `msg="retention sweep" deleted=2`) {
		t.Errorf("no sweep log line:\n%s", logs.String())
	}
}
