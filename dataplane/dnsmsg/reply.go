package dnsmsg

import (
	"fmt"
	"net/netip"
)

// AppendBlockReply appends to dst the answer the box gives in the resolver's
// place to query, a DNS query for a blocked domain: the same id, question
// and recursion-desired bit, recursion available, and
//
//   - with no sinkhole: NXDOMAIN and no records, so the client's lookup fails
//     at once and it never connects;
//   - with a sinkhole address of the question's family (A: IPv4, AAAA: IPv6):
//     NOERROR and one record pointing the name at the sinkhole for ttl
//     seconds, so the client's connection goes where the office chose;
//   - with a sinkhole of the other family, or another question type: NOERROR
//     and no records (the name exists, without that kind of address).
//
// The query's additional records (EDNS) are not echoed. It returns an error
// for what is not a one-question query (nothing is appended then).
func AppendBlockReply(dst, query []byte, sinkhole netip.Addr, ttl uint32) ([]byte, error) {
	var m Msg
	if err := m.Decode(query); err != nil {
		return dst, err
	}
	if m.Response || m.QDCount != 1 {
		return dst, fmt.Errorf("%w: not a one-question query", ErrMalformed)
	}
	end, err := m.readName(query, 12, false)
	if err != nil {
		return dst, err
	}
	end += 4 // type and class
	rcode := byte(RcodeNXDomain)
	var rdata []byte
	if sinkhole.IsValid() {
		rcode = RcodeNoError
		switch {
		case m.QType == TypeA && sinkhole.Is4():
			a := sinkhole.As4()
			rdata = a[:]
		case m.QType == TypeAAAA && sinkhole.Is6() && !sinkhole.Is4In6():
			a := sinkhole.As16()
			rdata = a[:]
		}
	}
	an := byte(0)
	if rdata != nil {
		an = 1
	}
	dst = append(dst, query[0], query[1], // id
		0x80|(query[2]&0x79), // QR, opcode, RD kept; AA, TC cleared
		0x80|rcode,           // RA, rcode
		0, 1,                 // one question
		0, an, // answers
		0, 0, 0, 0) // no authority, no additional
	dst = append(dst, query[12:end]...)
	if rdata != nil {
		dst = append(dst, 0xc0, 12, // the question's name
			byte(m.QType>>8), byte(m.QType), 0, 1, // type, class IN
			byte(ttl>>24), byte(ttl>>16), byte(ttl>>8), byte(ttl),
			0, byte(len(rdata)))
		dst = append(dst, rdata...)
	}
	return dst, nil
}
