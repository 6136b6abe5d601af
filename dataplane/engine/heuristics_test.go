package engine

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/openutm/utm/dataplane/beacon"
	"github.com/openutm/utm/dataplane/internal/testpcap"
)

// TestBeaconAlert: a host connecting to one server every 60 s (±3 s)
// raises one ★★ beaconing alert naming the destination and period; the
// same number of connections at random times (the control) raises none.
func TestBeaconAlert(t *testing.T) {
	for _, periodic := range []bool{true, false} {
		rng := rand.New(rand.NewSource(1))
		var rec recorder
		e := New(Config{Sink: &rec, Heuristics: NewHeuristics()}, defaultBundle(t))
		at := t0
		for i := 0; i < 60; i++ {
			if periodic {
				at = at.Add(60*time.Second + time.Duration(rng.Intn(6000)-3000)*time.Millisecond)
			} else {
				at = at.Add(time.Duration(rng.ExpFloat64() * float64(60*time.Second)))
			}
			tr := testpcap.NewTrace(at)
			tr.NewTCP(fmt.Sprintf("198.18.1.2:%d", 41000+i), "198.18.2.99:443").Handshake()
			verdicts(e, tr.Sorted())
		}
		var beacons int
		for _, a := range rec.alerts() {
			if a.Alert.SignatureID == sidBeacon {
				beacons++
				if a.Stars != 2 || a.DestIP != "198.18.2.99" {
					t.Fatalf("beacon alert %+v", a)
				}
			}
		}
		if periodic && beacons != 1 || !periodic && beacons != 0 {
			t.Fatalf("periodic=%v: %d beacon alerts", periodic, beacons)
		}
	}
}

func nxAnswer(t *testing.T, id uint16, name string) []byte {
	t.Helper()
	d := &layers.DNS{ID: id, QR: true, RD: true, RA: true, ResponseCode: layers.DNSResponseCodeNXDomain,
		Questions: []layers.DNSQuestion{{Name: []byte(name), Type: layers.DNSTypeA, Class: layers.DNSClassIN}}}
	buf := gopacket.NewSerializeBuffer()
	if err := d.SerializeTo(buf, gopacket.SerializeOptions{FixLengths: true}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDGABurstAndIncident: 40 NXDOMAIN answers for random-looking names to
// one host raise one ★★ DGA alert; the same host then downloading EICAR
// becomes one ★★★ incident whose id both its alerts carry. Typos (the
// control) raise nothing.
func TestDGABurstAndIncident(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	const letters = "abcdefghijklmnopqrstuvwxyz"
	for _, dgaNames := range []bool{true, false} {
		var rec recorder
		e := New(Config{Sink: &rec, Reset: &resets{}, Heuristics: NewHeuristics()}, defaultBundle(t))
		tr := testpcap.NewTrace(t0)
		for i := 0; i < 40; i++ {
			name := fmt.Sprintf("wwww.gooogle%d.com", i)
			if dgaNames {
				b := make([]byte, 14+rng.Intn(6))
				for j := range b {
					b[j] = letters[rng.Intn(len(letters))]
				}
				name = string(b) + ".com"
			}
			if i%2 == 0 { // half the lookups are seen from the query on (the others: answer only)
				tr.UDP(fmt.Sprintf("198.18.1.2:%d", 50000+i), "198.18.2.53:53", dnsQuery(t, uint16(i), name, layers.DNSTypeA))
			}
			tr.UDP("198.18.2.53:53", fmt.Sprintf("198.18.1.2:%d", 50000+i), nxAnswer(t, uint16(i), name))
		}
		c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:80").Handshake()
		c.Client([]byte("GET /x.com HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"), 0)
		c.Server([]byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(eicar))), 0)
		c.Server(eicar, 0)
		verdicts(e, tr.Sorted())
		sids := map[int]string{}
		for _, a := range rec.alerts() {
			sids[a.Alert.SignatureID] = a.Incident
		}
		if !dgaNames {
			if _, ok := sids[sidDGA]; ok {
				t.Fatal("typo lookups raised a DGA alert")
			}
			if _, ok := sids[sidIncident]; ok {
				t.Fatal("an AV hit alone opened an incident")
			}
			continue
		}
		inc, ok := sids[sidIncident]
		if _, dga := sids[sidDGA]; !dga || !ok || inc == "" || sids[sidAVHTTP] != inc {
			t.Fatalf("alerts by sid (-> incident id): %v; want DGA, AV and an incident tagging the AV alert", sids)
		}
	}
}

// TestBeaconIgnore: a mail client polling POP3 every minute is not
// beaconing by default, an address the config lists is not either, and
// the same periodic connections elsewhere still are.
func TestBeaconIgnore(t *testing.T) {
	for _, c := range []struct {
		dst    string
		ignore []beacon.Ignore
		want   int
	}{
		{"198.18.2.25:995", nil, 0}, // default: POP3S polling
		{"198.18.2.99:443", nil, 1},
		{"198.18.2.99:443", []beacon.Ignore{must(beacon.ParseIgnore("198.18.2.0/24"))}, 0},
		{"198.18.2.99:443", []beacon.Ignore{must(beacon.ParseIgnore("198.18.2.99:8443"))}, 1},
		{"198.18.2.25:995", []beacon.Ignore{}, 1}, // an empty list ignores nothing
	} {
		var rec recorder
		e := New(Config{Sink: &rec, Heuristics: NewHeuristics(), BeaconIgnore: c.ignore}, defaultBundle(t))
		at := t0
		for i := 0; i < 60; i++ {
			at = at.Add(60 * time.Second)
			tr := testpcap.NewTrace(at)
			tr.NewTCP(fmt.Sprintf("198.18.1.2:%d", 41000+i), c.dst).Handshake()
			verdicts(e, tr.Sorted())
		}
		n := 0
		for _, a := range rec.alerts() {
			if a.Alert.SignatureID == sidBeacon {
				n++
			}
		}
		if n != c.want {
			t.Errorf("%s ignore %v: %d beacon alerts, want %d", c.dst, c.ignore, n, c.want)
		}
	}
	for _, bad := range []string{"", ":0", ":x", "example.com", "1.2.3.4:99999"} {
		if _, err := beacon.ParseIgnore(bad); err == nil {
			t.Errorf("beacon.ParseIgnore(%q) accepted", bad)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
