package quic_test

import (
	"bytes"
	"crypto/aes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/openutm/utm/dataplane/internal/quictest"
	"github.com/openutm/utm/dataplane/quic"
	"github.com/openutm/utm/dataplane/tlshello"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rfcDCID is the connection ID of the worked examples in RFC 9001 A and
// RFC 9369 A.
const rfcDCID = "8394c8f03e515708"

// TestInitialKeys: the client keys derived from the example connection ID
// are those RFC 9001 A.1 (version 1) and RFC 9369 A.1 (version 2) print,
// and the header protection mask of RFC 9001 A.2's sample is the one it
// prints.
func TestInitialKeys(t *testing.T) {
	for _, c := range []struct {
		ver         uint32
		key, iv, hp string
	}{
		{quic.Version1, "1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c", "9f50449e04a0e810283a1e9933adedd2"},
		{quic.Version2, "8b1a0bc121284290a29e0971b5cd045d", "91f73e2351d8fa91660e909f", "45b95e15235d6f45a6b19cbcb0294ba9"},
	} {
		key, iv, hp := quic.InitialKeys(unhex(t, rfcDCID), c.ver)
		if hex.EncodeToString(key) != c.key || hex.EncodeToString(iv) != c.iv || hex.EncodeToString(hp) != c.hp {
			t.Errorf("version %#x: key %x iv %x hp %x; want %s %s %s", c.ver, key, iv, hp, c.key, c.iv, c.hp)
		}
	}
	_, _, hp := quic.InitialKeys(unhex(t, rfcDCID), quic.Version1)
	block, _ := aes.NewCipher(hp)
	var mask [16]byte
	block.Encrypt(mask[:], unhex(t, "d1b1c98dd7689fb8ec11d242b123dc9b"))
	if got := hex.EncodeToString(mask[:5]); got != "437b9aec36" {
		t.Errorf("header protection mask %s, want RFC 9001 A.2's 437b9aec36", got)
	}
}

// TestClientHello: a real ClientHello (crypto/tls as a QUIC client), cut
// into CRYPTO frames sent out of order across two Initial packets (as
// Chrome scatters them), the second coalesced with a 0-RTT packet, comes
// back whole and in order, for QUIC v1 and v2; a TLS parser reads its
// server name and a "q" JA4 from it.
func TestClientHello(t *testing.T) {
	hello := quictest.ClientHello(t, "c2.quic.example")
	dcid := unhex(t, rfcDCID)
	a, b := len(hello)/3, 2*len(hello)/3
	for _, ver := range []uint32{quic.Version1, quic.Version2} {
		p1 := quictest.Initial(ver, dcid, 0, append(quictest.Crypto(a, hello[a:b]), append([]byte{0x01}, quictest.Crypto(0, hello[:a])...)...), quic.MinInitial)
		p2 := quictest.Initial(ver, dcid, 1, quictest.Crypto(b, hello[b:]), 0)
		zeroRTT := []byte{0xd0 | 1, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0x40, 4, 1, 2, 3, 4}
		if ver == quic.Version2 {
			zeroRTT[0] = 0xe0 | 1 // v2 0-RTT is type 2
		}
		binary.BigEndian.PutUint32(zeroRTT[1:5], ver)
		if !quic.LooksInitial(p1) {
			t.Fatalf("version %#x: LooksInitial says no to a padded Initial", ver)
		}
		var c quic.Client
		got1, err1 := c.Packet(p1)
		n1 := len(got1)
		got2, err2 := c.Packet(append(p2, zeroRTT...))
		if err1 != nil || err2 != nil || n1 != b || !bytes.Equal(append(append([]byte(nil), hello[:n1]...), got2...), hello) {
			t.Fatalf("version %#x: got %d then %d bytes (%v, %v); want the first %d then the rest of %d", ver, n1, len(got2), err1, err2, b, len(hello))
		}
		var p tlshello.Parser
		p.QUIC = true
		p.FeedHandshake(0, hello[:n1])
		ev := p.FeedHandshake(0, got2)
		in := p.Info()
		if ev&tlshello.ClientHello == 0 || string(in.SNI) != "c2.quic.example" || !strings.HasPrefix(string(in.JA4), "q13d") {
			t.Fatalf("version %#x: event %v, SNI %q, JA4 %q; want the ClientHello, c2.quic.example, q13d...", ver, ev, in.SNI, in.JA4)
		}
	}
}

// TestNotReadable: packets that are not a client's Initial, or do not open,
// give nothing; CRYPTO data past quic.MaxCrypto is refused.
func TestNotReadable(t *testing.T) {
	dcid := unhex(t, rfcDCID)
	good := quictest.Initial(quic.Version1, dcid, 0, quictest.Crypto(0, []byte{1, 0, 0, 1, 9}), quic.MinInitial)
	for name, b := range map[string][]byte{
		"short header": append([]byte{0x40}, good[1:]...),
		"too small":    good[:100],
		"bad version":  append([]byte{0xc0, 0xff, 0, 0, 29}, good[5:]...),
	} {
		if quic.LooksInitial(b) {
			t.Errorf("%s: LooksInitial says yes", name)
		}
	}
	var c quic.Client
	tampered := append([]byte(nil), good...)
	tampered[len(tampered)-1] ^= 1
	if got, err := c.Packet(tampered); len(got) != 0 || !errors.Is(err, quic.ErrDecrypt) {
		t.Errorf("a tampered packet gave %d bytes, %v; want none, quic.ErrDecrypt", len(got), err)
	}
	other := quictest.Initial(quic.Version1, []byte{9, 9, 9, 9, 9, 9, 9, 9}, 0, quictest.Crypto(0, []byte{1}), quic.MinInitial)
	other[6] = 8 // its connection ID rewritten: keys no longer match
	copy(other[6:], dcid)
	if got, err := c.Packet(other); len(got) != 0 || err == nil {
		t.Errorf("a packet sealed for another connection ID gave %d bytes, %v", len(got), err)
	}
	far := quictest.Initial(quic.Version1, dcid, 0, quictest.Crypto(quic.MaxCrypto-1, []byte{1, 2}), quic.MinInitial)
	if _, err := c.Packet(far); !errors.Is(err, quic.ErrTooLong) {
		t.Errorf("CRYPTO data past quic.MaxCrypto: %v, want quic.ErrTooLong", err)
	}
	if got, err := c.Packet(good); err != nil || !bytes.Equal(got, []byte{1, 0, 0, 1, 9}) {
		t.Errorf("after all that, a good packet gave %x, %v", got, err)
	}
}

// TestPacketAllocs: once a connection's keys exist, reading its packets
// does not allocate (Reset keeps the last keys).
func TestPacketAllocs(t *testing.T) {
	hello := quictest.ClientHello(t, "www.lab.test")
	pkt := quictest.Initial(quic.Version1, unhex(t, rfcDCID), 0, quictest.Crypto(0, hello), quic.MinInitial)
	var c quic.Client
	c.Packet(pkt)
	if n := testing.AllocsPerRun(100, func() {
		c.Reset()
		c.Packet(pkt)
	}); n != 0 {
		t.Errorf("reading an Initial packet allocates %v times; want 0", n)
	}
}

func FuzzPacket(f *testing.F) {
	dcid := unhex(f, rfcDCID)
	hello := quictest.ClientHello(f, "c2.quic.example")
	f.Add(quictest.Initial(quic.Version1, dcid, 0, quictest.Crypto(0, hello), quic.MinInitial))
	f.Add(quictest.Initial(quic.Version2, dcid, 1, append([]byte{0x02, 1, 0, 1, 0, 0x1c, 1, 0, 2, 'h', 'i'}, quictest.Crypto(5, hello[5:])...), 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c quic.Client
		got, _ := c.Packet(b)
		if len(got) > quic.MaxCrypto {
			t.Fatalf("%d bytes back", len(got))
		}
	})
}

// BenchmarkInitial reads a client's first Initial packet: "known" with
// the connection's keys already derived (a retransmission, the second
// packet), "new" deriving them (every new connection: the cost a flood of
// Initial packets with fresh connection IDs imposes).
func BenchmarkInitial(b *testing.B) {
	hello := quictest.ClientHello(b, "www.lab.test")
	dcid := unhex(b, rfcDCID)
	pkt := quictest.Initial(quic.Version1, dcid, 0, quictest.Crypto(0, hello), quic.MinInitial)
	b.Run("known", func(b *testing.B) {
		var c quic.Client
		b.SetBytes(int64(len(pkt)))
		b.ReportAllocs()
		for b.Loop() {
			c.Reset()
			c.Packet(pkt)
		}
	})
	b.Run("new", func(b *testing.B) {
		var c quic.Client
		p := append([]byte(nil), pkt...)
		b.SetBytes(int64(len(pkt)))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			c.Reset()
			p[6] = byte(i) // another connection ID: keys derived again (the packet then fails to open)
			c.Packet(p)
		}
	})
}
