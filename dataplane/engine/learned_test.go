package engine

import (
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/openutm/utm/dataplane/internal/testpcap"
)

// dnsAnswer returns a DNS response naming name -> addr.
func dnsAnswer(t *testing.T, name, addr string) []byte {
	t.Helper()
	d := &layers.DNS{ID: 7, QR: true, RD: true, RA: true, ResponseCode: layers.DNSResponseCodeNoErr,
		Questions: []layers.DNSQuestion{{Name: []byte(name), Type: layers.DNSTypeA, Class: layers.DNSClassIN}},
		Answers: []layers.DNSResourceRecord{{Name: []byte(name), Type: layers.DNSTypeA, Class: layers.DNSClassIN,
			TTL: 300, IP: net.ParseIP(addr).To4()}}}
	buf := gopacket.NewSerializeBuffer()
	if err := d.SerializeTo(buf, gopacket.SerializeOptions{FixLengths: true}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestLearnedSharedAcrossWorkers: the DNS answer for a listed domain and
// the connection to the address it names hash to different queues when
// the workers' engines share one Learned table, the connection's first
// packet is blocked with sid 2220003 by the other worker; with separate
// tables (the control) it is not.
func TestLearnedSharedAcrossWorkers(t *testing.T) {
	for _, shared := range []bool{true, false} {
		tr := testpcap.NewTrace(t0)
		tr.UDP("198.18.2.53:53", "198.18.1.2:40001", dnsAnswer(t, "cnc.utm-lab.test", "198.18.2.66"))
		c := tr.NewTCP("198.18.1.2:40002", "198.18.2.66:80")
		c.Handshake()
		pkts := tr.Sorted()

		rec := &recorder{}
		var a, b Config
		a.Sink, b.Sink = rec, rec
		if shared {
			a.Learned = NewLearned()
			b.Learned = a.Learned
		}
		dnsWorker, tcpWorker := New(a, defaultBundle(t)), New(b, defaultBundle(t))
		dnsWorker.Process(pkts[0].TS, pkts[0].Data)
		v := tcpWorker.Process(pkts[1].TS, pkts[1].Data) // the SYN

		var learnedAlert bool
		for _, ev := range rec.alerts() {
			if ev.Alert.SignatureID == sidCNCLearned {
				learnedAlert = true
			}
		}
		if shared && (v == Accept || !learnedAlert) {
			t.Errorf("shared table: the SYN to the learned address got %v (sid %d alert: %v); want blocked with the alert", v, sidCNCLearned, learnedAlert)
		}
		if !shared && (v != Accept || learnedAlert) {
			t.Errorf("separate tables: the SYN got %v, learned alert %v; the control should pass (the test cannot tell sharing apart)", v, learnedAlert)
		}
	}
}
