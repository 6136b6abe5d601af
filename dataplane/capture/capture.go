// Package capture reads pcap and pcapng files and yields the IP packet of
// each frame, whatever the link type: Ethernet (with 802.1Q/802.1ad tags),
// raw IP, Linux cooked capture (SLL and SLL2), BSD loopback (Null/Loop).
// Frames that carry no IP packet (ARP, LLDP, ...) are skipped and counted.
//
// It is the replay path's source: the engine sees exactly the bytes NFQUEUE
// would hand it. Reading uses gopacket/pcapgo (pure Go) with zero-copy
// reads: the returned packet is valid until the next call to Next.
//
// The link type comes from the file header, or for pcapng from each
// packet's interface, so one pcapng file may mix link types. Null/Loop
// frames are passed on whatever their address-family word says (it is
// host-order for Null, network-order for Loop); as on a raw link, a frame
// that is not really IP is the engine's to count as malformed.
package capture

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// ErrLinkType is returned (wrapped) by Open for a pcap file whose link
// type has no IP framing this package knows. (In pcapng files each
// interface has its own link type; packets on unknown ones are skipped and
// counted.)
var ErrLinkType = errors.New("capture: unsupported link type")

type source interface {
	ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

// Reader yields IP packets from a capture file.
type Reader struct {
	f       *os.File
	src     source
	ng      *pcapgo.NgReader
	link    layers.LinkType
	Skipped uint64 // frames without an IP packet, or on a pcapng interface of a link type not read
	// Truncated is set when the file ended inside a packet record (the
	// capture was cut off, e.g. tcpdump was killed); Next then returns
	// io.EOF and that last partial record is not returned.
	Truncated bool
}

// Open opens a pcap or pcapng file.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	br := bufio.NewReaderSize(f, 1<<20)
	magic, err := br.Peek(4)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("capture: %s is too short to be a capture: %w", path, err)
	}
	r := &Reader{f: f}
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		// Mixed link types: a pcapng may hold several interfaces (tcpdump
		// -i any, Wireshark on two NICs); each packet is read by its own.
		ng, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true, SkipUnknownVersion: true})
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("capture: %s: %w", path, err)
		}
		r.src, r.ng, r.link = ng, ng, ng.LinkType()
	} else {
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("capture: %s is neither pcap nor pcapng: %w", path, err)
		}
		// Like tcpdump and Wireshark, ignore the header's snap length: a
		// crafted one would size pcapgo's buffer (up to 4 GiB), and some
		// writers store packets longer than it. Records above maxRecord are
		// refused with an error.
		pr.SetSnaplen(maxRecord)
		r.src, r.link = pr, pr.LinkType()
	}
	if r.ng == nil && !known(r.link) {
		f.Close()
		return nil, fmt.Errorf("%w %v in %s (Ethernet, raw IP, Linux SLL/SLL2 and Null/Loop are read)", ErrLinkType, r.link, path)
	}
	return r, nil
}

// maxRecord is the largest packet record read from a pcap file (the
// libpcap maximum snap length).
const maxRecord = 262144

func known(lt layers.LinkType) bool {
	switch lt {
	case layers.LinkTypeEthernet, layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6,
		layers.LinkTypeLinuxSLL, linkTypeSLL2, layers.LinkTypeNull, layers.LinkTypeLoop, 12:
		return true
	}
	return false
}

// linkTypeSLL2 is LINKTYPE_LINUX_SLL2 (276) as gopacket v1.1.19 reports it:
// its LinkType is a uint8, so pcapgo hands us 276 & 0xff.
const linkTypeSLL2 layers.LinkType = 276 & 0xff

// Next returns the next IP packet and its timestamp, or io.EOF.
func (r *Reader) Next() (time.Time, []byte, error) {
	for {
		data, ci, err := r.src.ZeroCopyReadPacketData()
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				r.Truncated = true
				return time.Time{}, nil, io.EOF
			}
			if errors.Is(err, io.EOF) {
				return time.Time{}, nil, io.EOF
			}
			return time.Time{}, nil, fmt.Errorf("capture: %s: %w", r.f.Name(), err)
		}
		lt := r.link
		if r.ng != nil && len(ci.AncillaryData) > 0 {
			lt, _ = ci.AncillaryData[0].(layers.LinkType)
		}
		ip, ok := strip(lt, data)
		if !ok {
			r.Skipped++
			continue
		}
		return ci.Timestamp, ip, nil
	}
}

// Close closes the file.
func (r *Reader) Close() error { return r.f.Close() }

// strip removes the link-layer header. ok is false when the frame carries
// no IPv4 or IPv6 packet.
func strip(lt layers.LinkType, b []byte) ([]byte, bool) {
	var etype uint16
	switch lt {
	case layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6, 12:
		return ipOnly(b)
	case layers.LinkTypeEthernet:
		if len(b) < 14 {
			return nil, false
		}
		etype, b = binary.BigEndian.Uint16(b[12:]), b[14:]
		for (etype == 0x8100 || etype == 0x88a8) && len(b) >= 4 {
			etype, b = binary.BigEndian.Uint16(b[2:]), b[4:]
		}
	case layers.LinkTypeLinuxSLL:
		if len(b) < 16 {
			return nil, false
		}
		etype, b = binary.BigEndian.Uint16(b[14:]), b[16:]
	case linkTypeSLL2:
		if len(b) < 20 {
			return nil, false
		}
		etype, b = binary.BigEndian.Uint16(b[0:]), b[20:]
	case layers.LinkTypeNull, layers.LinkTypeLoop:
		if len(b) < 4 {
			return nil, false
		}
		return ipOnly(b[4:])
	default:
		return nil, false
	}
	if etype != 0x0800 && etype != 0x86dd {
		return nil, false
	}
	return b, true
}

// ipOnly passes a raw-IP frame on as it is: on a raw link every frame is
// meant to be IP, so a bad version is the engine's to count as malformed.
func ipOnly(b []byte) ([]byte, bool) {
	return b, len(b) > 0
}
