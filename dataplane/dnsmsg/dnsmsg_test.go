package dnsmsg

import (
	"errors"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func build(t testing.TB, d *layers.DNS) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := d.SerializeTo(buf, gopacket.SerializeOptions{FixLengths: true}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecodeQueryAndAnswer(t *testing.T) {
	q := layers.DNSQuestion{Name: []byte("CnC.UTM-Lab.test"), Type: layers.DNSTypeA, Class: layers.DNSClassIN}
	query := build(t, &layers.DNS{ID: 7, RD: true, Questions: []layers.DNSQuestion{q}})
	var m Msg
	if err := m.Decode(query); err != nil {
		t.Fatal(err)
	}
	if m.Response || string(m.Name()) != "cnc.utm-lab.test" || m.QType != TypeA || m.ID != 7 {
		t.Fatalf("query decoded as %+v name=%q", m, m.Name())
	}
	resp := build(t, &layers.DNS{ID: 7, QR: true, Questions: []layers.DNSQuestion{q}, Answers: []layers.DNSResourceRecord{
		{Name: q.Name, Type: layers.DNSTypeA, Class: layers.DNSClassIN, TTL: 300, IP: net.IPv4(198, 18, 2, 66)},
		{Name: q.Name, Type: layers.DNSTypeAAAA, Class: layers.DNSClassIN, TTL: 60, IP: net.ParseIP("2001:2::66")},
	}})
	if err := m.Decode(resp); err != nil {
		t.Fatal(err)
	}
	if !m.Response || len(m.Answers) != 2 || m.Answers[0].Addr.String() != "198.18.2.66" || m.Answers[0].TTL != 300 || m.Answers[1].Addr.String() != "2001:2::66" {
		t.Fatalf("answers = %+v", m.Answers)
	}
	n := testing.AllocsPerRun(100, func() { _ = m.Decode(resp) })
	if n != 0 {
		t.Fatalf("Decode allocates %v times; want 0", n)
	}
}

func TestDecodeHostile(t *testing.T) {
	loop := []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1}
	var m Msg
	if err := m.Decode(loop); !errors.Is(err, ErrMalformed) {
		t.Fatalf("pointer loop: err = %v, want ErrMalformed", err)
	}
	if err := m.Decode([]byte{1, 2, 3}); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short: err = %v, want ErrTruncated", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(build(f, &layers.DNS{ID: 1, Questions: []layers.DNSQuestion{{Name: []byte("a.b"), Type: 1, Class: 1}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Msg
		if m.Decode(b) == nil && len(m.Name()) > 255 {
			t.Fatal("name longer than 255")
		}
	})
}
