package capture

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

func ipPacket(t *testing.T) []byte {
	buf := gopacket.NewSerializeBuffer()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IPv4(198, 18, 1, 2), DstIP: net.IPv4(198, 18, 2, 53)}
	u := &layers.UDP{SrcPort: 5000, DstPort: 53}
	u.SetNetworkLayerForChecksum(ip)
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, u, gopacket.Payload("q")); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestLinkTypes(t *testing.T) {
	ip := ipPacket(t)
	eth := append([]byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00}, ip...)
	vlan := append([]byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x81, 0x00, 0, 7, 0x08, 0x00}, ip...)
	arp := []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1}
	sll := append([]byte{0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00}, ip...)
	sll2 := append(append([]byte{0x08, 0x00}, make([]byte, 18)...), ip...)
	null := append([]byte{2, 0, 0, 0}, ip...)
	ts := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name   string
		lt     layers.LinkType
		frames [][]byte
		ng     bool
	}{
		{"ethernet", layers.LinkTypeEthernet, [][]byte{arp, eth, vlan}, false},
		{"raw", layers.LinkTypeRaw, [][]byte{ip}, false},
		{"sll", layers.LinkTypeLinuxSLL, [][]byte{sll}, false},
		{"sll2", linkTypeSLL2, [][]byte{sll2}, false},
		{"null", layers.LinkTypeNull, [][]byte{null}, false},
		{"pcapng ethernet", layers.LinkTypeEthernet, [][]byte{eth, arp}, true},
	} {
		path := filepath.Join(t.TempDir(), "x.pcap")
		f, _ := os.Create(path)
		if c.ng {
			w, err := pcapgo.NewNgWriter(f, c.lt)
			if err != nil {
				t.Fatal(err)
			}
			for _, fr := range c.frames {
				w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(fr), Length: len(fr)}, fr)
			}
			w.Flush()
		} else {
			w := pcapgo.NewWriter(f)
			w.WriteFileHeader(65535, c.lt)
			for _, fr := range c.frames {
				w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(fr), Length: len(fr)}, fr)
			}
		}
		f.Close()
		r, err := Open(path)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		n := 0
		for {
			got, pkt, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if string(pkt) != string(ip) || !got.Equal(ts) {
				t.Fatalf("%s: wrong packet or time", c.name)
			}
			n++
		}
		r.Close()
		want := len(c.frames)
		for _, fr := range c.frames {
			if &fr[0] == &arp[0] {
				want--
			}
		}
		if n != want {
			t.Fatalf("%s: %d IP packets, want %d (skipped %d)", c.name, n, want, r.Skipped)
		}
	}
}

func ip6Packet(t *testing.T) []byte {
	buf := gopacket.NewSerializeBuffer()
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: net.ParseIP("2001:2::1"), DstIP: net.ParseIP("2001:2::53")}
	u := &layers.UDP{SrcPort: 5000, DstPort: 53}
	u.SetNetworkLayerForChecksum(ip)
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, u, gopacket.Payload("q6")); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readAll returns the packets of path.
func readAll(t *testing.T, path string) (*Reader, [][]byte) {
	t.Helper()
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	var out [][]byte
	for {
		_, pkt, err := r.Next()
		if errors.Is(err, io.EOF) {
			return r, out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]byte(nil), pkt...))
	}
}

func writePcap(t *testing.T, lt layers.LinkType, frames ...[]byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriterNanos(f)
	w.WriteFileHeader(65535, lt)
	for _, fr := range frames {
		w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1, 5), CaptureLength: len(fr), Length: len(fr)}, fr)
	}
	f.Close()
	return path
}

func TestMoreFramings(t *testing.T) {
	ip4, ip6 := ipPacket(t), ip6Packet(t)
	eth6 := append([]byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd}, ip6...)
	qinq := append([]byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xa8, 0, 5, 0x81, 0x00, 0, 7, 0x08, 0x00}, ip4...)
	loop6 := append([]byte{0, 0, 0, 30}, ip6...) // network order AF_INET6 (BSD value)
	sll2v6 := append(append([]byte{0x86, 0xdd}, make([]byte, 18)...), ip6...)

	_, got := readAll(t, writePcap(t, layers.LinkTypeEthernet, eth6, qinq))
	if len(got) != 2 || string(got[0]) != string(ip6) || string(got[1]) != string(ip4) {
		t.Fatalf("ethernet IPv6 / QinQ: %d packets", len(got))
	}
	_, got = readAll(t, writePcap(t, layers.LinkTypeLoop, loop6))
	if len(got) != 1 || string(got[0]) != string(ip6) {
		t.Fatalf("loop: %d packets", len(got))
	}
	// A real SLL2 file says 276 in its header (gopacket's LinkType is a
	// byte): patch the header the writer made.
	path := writePcap(t, layers.LinkTypeLinuxSLL, sll2v6)
	b, _ := os.ReadFile(path)
	b[20], b[21], b[22], b[23] = 276&0xff, 276>>8, 0, 0 // little-endian header
	os.WriteFile(path, b, 0o644)
	_, got = readAll(t, path)
	if len(got) != 1 || string(got[0]) != string(ip6) {
		t.Fatalf("sll2 (276): %d packets", len(got))
	}
}

func TestPcapngMixedInterfaces(t *testing.T) {
	ip := ipPacket(t)
	eth := append([]byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00}, ip...)
	path := filepath.Join(t.TempDir(), "x.pcapng")
	f, _ := os.Create(path)
	w, err := pcapgo.NewNgWriter(f, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := w.AddInterface(pcapgo.NgInterface{Name: "tun0", LinkType: layers.LinkTypeRaw})
	if err != nil {
		t.Fatal(err)
	}
	w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1, 0), CaptureLength: len(eth), Length: len(eth)}, eth)
	w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(2, 0), CaptureLength: len(ip), Length: len(ip), InterfaceIndex: raw}, ip)
	w.Flush()
	f.Close()
	_, got := readAll(t, path)
	if len(got) != 2 || string(got[0]) != string(ip) || string(got[1]) != string(ip) {
		t.Fatalf("mixed pcapng: %d packets", len(got))
	}
}

func TestTruncatedFile(t *testing.T) {
	ip := ipPacket(t)
	path := writePcap(t, layers.LinkTypeRaw, ip, ip)
	b, _ := os.ReadFile(path)
	os.WriteFile(path, b[:len(b)-5], 0o644)
	r, got := readAll(t, path)
	if len(got) != 1 || !r.Truncated {
		t.Fatalf("cut file: %d packets, Truncated=%v; want 1 and true", len(got), r.Truncated)
	}
	r, got = readAll(t, writePcap(t, layers.LinkTypeRaw, ip))
	if len(got) != 1 || r.Truncated {
		t.Fatalf("whole file: %d packets, Truncated=%v", len(got), r.Truncated)
	}
}

func TestUnsupportedLinkType(t *testing.T) {
	_, err := Open(writePcap(t, layers.LinkTypeIEEE80211Radio, []byte{0, 0, 8, 0}))
	if !errors.Is(err, ErrLinkType) {
		t.Fatalf("802.11 radiotap: %v, want ErrLinkType", err)
	}
}

func TestNotACapture(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.pcap")
	os.WriteFile(path, []byte("this is not a pcap file at all"), 0o644)
	if _, err := Open(path); err == nil {
		t.Fatal("a text file opened as a capture")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing.pcap")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

// FuzzReader opens arbitrary bytes as a capture and reads it to the end:
// no panic, and every packet returned is non-empty.
func FuzzReader(f *testing.F) {
	dir := f.TempDir()
	for _, lt := range []layers.LinkType{layers.LinkTypeEthernet, layers.LinkTypeRaw, layers.LinkTypeLinuxSLL} {
		path := filepath.Join(dir, "seed.pcap")
		fh, _ := os.Create(path)
		w := pcapgo.NewWriter(fh)
		w.WriteFileHeader(65535, lt)
		fr := []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0, 0, 20}
		w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1, 0), CaptureLength: len(fr), Length: len(fr)}, fr)
		fh.Close()
		b, _ := os.ReadFile(path)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "f.pcap")
		os.WriteFile(path, b, 0o644)
		r, err := Open(path)
		if err != nil {
			return
		}
		defer r.Close()
		for i := 0; i < 10000; i++ {
			_, pkt, err := r.Next()
			if err != nil {
				return
			}
			if len(pkt) == 0 {
				t.Fatal("empty packet returned")
			}
		}
	})
}
