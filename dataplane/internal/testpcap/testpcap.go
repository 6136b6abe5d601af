// Package testpcap builds synthetic but well-formed IP conversations (TCP
// with handshake, segmentation and close; UDP datagrams) and writes them as
// pcap files with Ethernet, raw-IP or Linux-cooked framing. Tests and the
// testdata generators use it; it is not part of the product.
package testpcap

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Packet is one IP packet and when it was seen.
type Packet struct {
	TS   time.Time
	Data []byte
}

// Trace collects packets from several conversations.
type Trace struct {
	Packets []Packet
	clock   time.Time
}

// NewTrace starts a trace whose first packet is at start.
func NewTrace(start time.Time) *Trace { return &Trace{clock: start} }

func (t *Trace) add(b []byte) {
	t.clock = t.clock.Add(time.Millisecond)
	t.Packets = append(t.Packets, Packet{TS: t.clock, Data: b})
}

// Sorted returns the packets in time order.
func (t *Trace) Sorted() []Packet {
	sort.SliceStable(t.Packets, func(i, j int) bool { return t.Packets[i].TS.Before(t.Packets[j].TS) })
	return t.Packets
}

// TCP is one TCP connection inside a trace.
type TCP struct {
	t              *Trace
	client, server netip.AddrPort
	cseq, sseq     uint32
}

// NewTCP starts a connection from client to server ("198.18.1.2:40000").
func (t *Trace) NewTCP(client, server string) *TCP {
	return &TCP{t: t, client: netip.MustParseAddrPort(client), server: netip.MustParseAddrPort(server), cseq: 1000, sseq: 5000}
}

// Handshake sends SYN, SYN-ACK, ACK.
func (c *TCP) Handshake() *TCP {
	c.seg(true, layers.TCP{SYN: true, Seq: c.cseq}, nil)
	c.cseq++
	c.seg(false, layers.TCP{SYN: true, ACK: true, Seq: c.sseq, Ack: c.cseq}, nil)
	c.sseq++
	c.seg(true, layers.TCP{ACK: true, Seq: c.cseq, Ack: c.sseq}, nil)
	return c
}

// Client sends data from the client in segments of at most mss bytes, each
// acknowledged.
func (c *TCP) Client(data []byte, mss int) *TCP { return c.send(true, data, mss) }

// Server sends data from the server.
func (c *TCP) Server(data []byte, mss int) *TCP { return c.send(false, data, mss) }

// ClientSegment sends one client segment at an explicit offset from the
// current sequence number without advancing it (for out-of-order and
// overlap tests).
func (c *TCP) ClientSegment(off uint32, data []byte) *TCP {
	c.seg(true, layers.TCP{ACK: true, PSH: true, Seq: c.cseq + off, Ack: c.sseq}, data)
	return c
}

// AdvanceClient moves the client's sequence number by n.
func (c *TCP) AdvanceClient(n int) *TCP { c.cseq += uint32(n); return c }

func (c *TCP) send(fromClient bool, data []byte, mss int) *TCP {
	if mss <= 0 {
		mss = 1460
	}
	for len(data) > 0 {
		n := min(mss, len(data))
		if fromClient {
			c.seg(true, layers.TCP{ACK: true, PSH: true, Seq: c.cseq, Ack: c.sseq}, data[:n])
			c.cseq += uint32(n)
			c.seg(false, layers.TCP{ACK: true, Seq: c.sseq, Ack: c.cseq}, nil)
		} else {
			c.seg(false, layers.TCP{ACK: true, PSH: true, Seq: c.sseq, Ack: c.cseq}, data[:n])
			c.sseq += uint32(n)
			c.seg(true, layers.TCP{ACK: true, Seq: c.cseq, Ack: c.sseq}, nil)
		}
		data = data[n:]
	}
	return c
}

// Close exchanges FINs, the server first.
func (c *TCP) Close() *TCP {
	c.seg(false, layers.TCP{FIN: true, ACK: true, Seq: c.sseq, Ack: c.cseq}, nil)
	c.sseq++
	c.seg(true, layers.TCP{FIN: true, ACK: true, Seq: c.cseq, Ack: c.sseq}, nil)
	c.cseq++
	c.seg(false, layers.TCP{ACK: true, Seq: c.sseq, Ack: c.cseq}, nil)
	return c
}

func (c *TCP) seg(fromClient bool, tcp layers.TCP, payload []byte) {
	src, dst := c.client, c.server
	if !fromClient {
		src, dst = dst, src
	}
	tcp.SrcPort, tcp.DstPort = layers.TCPPort(src.Port()), layers.TCPPort(dst.Port())
	tcp.Window = 64240
	c.t.add(IP(src.Addr(), dst.Addr(), layers.IPProtocolTCP, &tcp, payload))
}

// UDP adds one datagram.
func (t *Trace) UDP(src, dst string, payload []byte) {
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	u := &layers.UDP{SrcPort: layers.UDPPort(s.Port()), DstPort: layers.UDPPort(d.Port())}
	t.add(IP(s.Addr(), d.Addr(), layers.IPProtocolUDP, u, payload))
}

// Raw adds a packet as given (for malformed-input tests).
func (t *Trace) Raw(b []byte) { t.add(b) }

// IP serialises an IPv4 or IPv6 packet carrying l4 (TCP or UDP) and payload.
func IP(src, dst netip.Addr, proto layers.IPProtocol, l4 gopacket.SerializableLayer, payload []byte) []byte {
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	var ip gopacket.NetworkLayer
	var ipl gopacket.SerializableLayer
	if src.Is4() {
		v4 := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(dst.AsSlice())}
		ip, ipl = v4, v4
	} else {
		v6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(dst.AsSlice())}
		ip, ipl = v6, v6
	}
	switch l := l4.(type) {
	case *layers.TCP:
		l.SetNetworkLayerForChecksum(ip)
	case *layers.UDP:
		l.SetNetworkLayerForChecksum(ip)
	}
	if err := gopacket.SerializeLayers(buf, opts, ipl, l4, gopacket.Payload(payload)); err != nil {
		panic(fmt.Sprintf("testpcap: serialise: %v", err))
	}
	return append([]byte(nil), buf.Bytes()...)
}

// Framing of the packets in a pcap file.
type Framing int

// Framings.
const (
	Ethernet Framing = iota
	RawIP
	LinuxSLL
)

// WritePcap writes pkts to path with the given framing.
func WritePcap(path string, fr Framing, pkts []Packet) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	lt := map[Framing]layers.LinkType{Ethernet: layers.LinkTypeEthernet, RawIP: layers.LinkTypeRaw, LinuxSLL: layers.LinkTypeLinuxSLL}[fr]
	if err := w.WriteFileHeader(65535, lt); err != nil {
		return err
	}
	for _, p := range pkts {
		frame := p.Data
		etype := uint16(0x0800)
		if len(frame) > 0 && frame[0]>>4 == 6 {
			etype = 0x86dd
		}
		switch fr {
		case Ethernet:
			h := []byte{0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, byte(etype >> 8), byte(etype)}
			frame = append(h, frame...)
		case LinuxSLL:
			h := make([]byte, 16)
			h[1] = 0 // packet type: to us
			h[3] = 1 // ARPHRD_ETHER
			h[5] = 6 // address length
			copy(h[6:], []byte{0x02, 0, 0, 0, 0, 1})
			h[14], h[15] = byte(etype>>8), byte(etype)
			frame = append(h, frame...)
		}
		ci := gopacket.CaptureInfo{Timestamp: p.TS, CaptureLength: len(frame), Length: len(frame)}
		if err := w.WritePacket(ci, frame); err != nil {
			return err
		}
	}
	return nil
}
