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

func TestNotACapture(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.pcap")
	os.WriteFile(path, []byte("this is not a pcap file at all"), 0o644)
	if _, err := Open(path); err == nil {
		t.Fatal("a text file opened as a capture")
	}
}
