package replay

import (
	"net"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func netIP(s string) net.IP        { return net.ParseIP(s) }
func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func serializeDNS(d *layers.DNS) []byte {
	buf := gopacket.NewSerializeBuffer()
	if err := d.SerializeTo(buf, gopacket.SerializeOptions{FixLengths: true}); err != nil {
		panic(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}
