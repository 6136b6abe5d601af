package incident

import (
	"net/netip"
	"testing"
	"time"
)

var (
	t0    = time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	hostA = netip.MustParseAddr("198.18.0.31")
	hostB = netip.MustParseAddr("198.18.0.32")
)

func sig(h netip.Addr, k Kind, min int, id string) Signal {
	return Signal{Host: h, Kind: k, Stars: 2, At: t0.Add(time.Duration(min) * time.Minute), AlertID: id, What: k.String() + " " + id}
}

func TestRules(t *testing.T) {
	for _, tc := range []struct {
		name    string
		signals []Signal
		want    string // Reason of the incident opened by the last signal; "" = none at all
	}{
		{"AV then intel hit", []Signal{sig(hostA, AV, 0, "a1"), sig(hostA, IntelHit, 10, "a2")}, "av+intel"},
		{"intel hit then AV", []Signal{sig(hostA, IntelHit, 0, "a1"), sig(hostA, AV, 59, "a2")}, "av+intel"},
		{"AV then beacon: beacon escalates", []Signal{sig(hostA, AV, 0, "a1"), sig(hostA, Beacon, 30, "a2")}, "av+beacon"},
		{"beacon then intel hit: beacon escalates", []Signal{sig(hostA, Beacon, 0, "a1"), sig(hostA, IntelHit, 5, "a2")}, "beacon+intel"},
		{"AV then DGA burst", []Signal{sig(hostA, DGA, 0, "a1"), sig(hostA, AV, 5, "a2")}, "av+dga"},
		{"AV alone, twice", []Signal{sig(hostA, AV, 0, "a1"), sig(hostA, AV, 1, "a2")}, ""},
		{"intel alone", []Signal{sig(hostA, IntelHit, 0, "a1"), sig(hostA, IntelHit, 1, "a2")}, ""},
		{"DGA and intel: no AV, no beacon", []Signal{sig(hostA, DGA, 0, "a1"), sig(hostA, IntelHit, 1, "a2")}, ""},
		{"AV and IPS", []Signal{sig(hostA, AV, 0, "a1"), sig(hostA, IPS, 1, "a2")}, ""},
		{"AV and intel 61 min apart", []Signal{sig(hostA, AV, 0, "a1"), sig(hostA, IntelHit, 61, "a2")}, ""},
		{"AV on one host, intel on another", []Signal{sig(hostA, AV, 0, "a1"), sig(hostB, IntelHit, 1, "a2")}, ""},
		{"AV, beacon and intel at once", []Signal{sig(hostA, IPS, 0, "a0"), sig(hostA, Beacon, 1, "a1"), sig(hostA, AV, 2, "a2"), sig(hostA, IntelHit, 3, "a3")}, "av+beacon"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(Config{})
			var got []Incident
			for _, s := range tc.signals {
				if inc, ok := c.Add(s); ok {
					got = append(got, inc)
				}
			}
			if tc.want == "" {
				if len(got) != 0 {
					t.Fatalf("incident %+v, want none", got[0])
				}
				return
			}
			if len(got) == 0 {
				t.Fatal("no incident")
			}
			inc := got[0]
			if inc.Reason != tc.want || inc.Stars != 3 || inc.Updated || inc.Host != hostA || len(inc.ID) != 16 {
				t.Errorf("incident %+v: want reason %q, 3 stars, new, host A, 16-hex ID", inc, tc.want)
			}
			last := tc.signals[len(tc.signals)-1]
			if len(got) == 1 && inc.Signals[len(inc.Signals)-1].AlertID != last.AlertID {
				t.Errorf("evidence %+v does not end with the triggering signal %s", inc.Signals, last.AlertID)
			}
			// every signal in the window before it is evidence, IPS included
			for _, s := range tc.signals[:len(tc.signals)-len(got)+1] {
				found := false
				for _, e := range inc.Signals {
					found = found || e.AlertID == s.AlertID
				}
				if !found {
					t.Errorf("signal %s missing from evidence %+v", s.AlertID, inc.Signals)
				}
			}
			if !inc.First.Equal(tc.signals[0].At) {
				t.Errorf("First %v, want %v", inc.First, tc.signals[0].At)
			}
		})
	}
}

func TestLaterSignalsExtendTheIncident(t *testing.T) {
	c := New(Config{})
	c.Add(sig(hostA, AV, 0, "a1"))
	opened, ok := c.Add(sig(hostA, IntelHit, 10, "a2"))
	if !ok || opened.Updated {
		t.Fatalf("not opened: %+v %v", opened, ok)
	}
	ext, ok := c.Add(sig(hostA, Beacon, 65, "a3")) // 55 min after the last signal: extends
	if !ok || !ext.Updated || ext.ID != opened.ID || len(ext.Signals) != 3 {
		t.Fatalf("extension %+v: want Updated, same ID %s, 3 signals", ext, opened.ID)
	}
	if ext.Reason != "av+intel,av+beacon,beacon+intel" {
		t.Errorf("Reason %q after the beacon", ext.Reason)
	}
	if !ext.Last.Equal(t0.Add(65 * time.Minute)) {
		t.Errorf("Last %v", ext.Last)
	}
	if len(opened.Signals) != 2 {
		t.Errorf("the first Incident's evidence changed under the caller: %d signals", len(opened.Signals))
	}
	// quiet for more than the window: closed; a new match is a new incident
	if inc, ok := c.Add(sig(hostA, IntelHit, 200, "b1")); ok {
		t.Fatalf("intel hit alone after the incident closed: %+v", inc)
	}
	again, ok := c.Add(sig(hostA, AV, 201, "b2"))
	if !ok || again.Updated || again.ID == opened.ID || len(again.Signals) != 2 {
		t.Fatalf("second incident %+v: want a new one with a new ID and only its 2 signals", again)
	}
	// the ID is stable for the same input
	c2 := New(Config{})
	c2.Add(sig(hostA, AV, 0, "a1"))
	if same, _ := c2.Add(sig(hostA, IntelHit, 10, "a2")); same.ID != opened.ID {
		t.Errorf("ID %s on replay, want %s", same.ID, opened.ID)
	}
}

func TestBounds(t *testing.T) {
	c := New(Config{MaxSignals: 4, MaxHosts: 2})
	for i := 0; i < 10; i++ { // IPS noise: only the last 4 kept
		c.Add(sig(hostA, IPS, i, "ips"))
	}
	c.Add(sig(hostA, AV, 10, "av"))
	inc, ok := c.Add(sig(hostA, IntelHit, 11, "intel"))
	if !ok || len(inc.Signals) != 4 {
		t.Fatalf("%+v: want an incident with 4 signals", inc)
	}
	for i := 0; i < 5; i++ {
		inc, _ = c.Add(sig(hostA, IPS, 12+i, "more"))
	}
	if len(inc.Signals) != 4 || inc.Dropped != 5 {
		t.Errorf("evidence %d dropped %d, want 4 and 5", len(inc.Signals), inc.Dropped)
	}
	// a third host evicts the least recently signalled one (host A)
	c.Add(sig(hostB, AV, 20, "b"))
	c.Add(sig(netip.MustParseAddr("198.18.0.33"), AV, 20, "c"))
	if inc, ok := c.Add(sig(hostA, IntelHit, 21, "after")); ok {
		t.Errorf("host A was evicted but its incident continued: %+v", inc)
	}
}
