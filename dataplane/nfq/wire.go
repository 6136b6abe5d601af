//go:build linux

package nfq

import (
	"encoding/binary"
)

// The NFQUEUE netlink wire format (linux/netfilter/nfnetlink_queue.h):
// nlmsghdr (host byte order), nfgenmsg, then attributes (nlattr, host
// byte order header, payload padded to 4 bytes; NFQA values big endian).
const (
	nlmsgHdrLen  = 16 // struct nlmsghdr
	nfgenHdrLen  = 4  // struct nfgenmsg
	nlaHdrLen    = 4  // struct nlattr
	nlaTypeMask  = 0x3fff
	nlmsgError   = 0x2 // NLMSG_ERROR
	nlmRequest   = 0x1 // NLM_F_REQUEST
	nfnlSubQueue = 3   // NFNL_SUBSYS_QUEUE

	msgPacket       = nfnlSubQueue<<8 | 0 // NFQNL_MSG_PACKET
	msgVerdict      = nfnlSubQueue<<8 | 1 // NFQNL_MSG_VERDICT
	msgVerdictBatch = nfnlSubQueue<<8 | 3 // NFQNL_MSG_VERDICT_BATCH

	attrPacketHdr  = 1  // NFQA_PACKET_HDR: be32 id, be16 hw_protocol, u8 hook
	attrVerdictHdr = 2  // NFQA_VERDICT_HDR: be32 verdict, be32 id
	attrMark       = 3  // NFQA_MARK: be32
	attrPayload    = 10 // NFQA_PAYLOAD
	attrCapLen     = 13 // NFQA_CAP_LEN: be32, present when the payload was cut
	attrSkbInfo    = 14 // NFQA_SKB_INFO: be32 flags

	skbCsumNotReady = 1 << 0 // NFQA_SKB_CSUMNOTREADY: checksum left to the NIC
	skbGSO          = 1 << 1 // NFQA_SKB_GSO: a segmentation-offload super-packet

	nfDrop   = 0 // NF_DROP
	nfAccept = 1 // NF_ACCEPT
	nfRepeat = 4 // NF_REPEAT

	// verdictLen and markedVerdictLen are the sizes of a verdict message
	// without and with NFQA_MARK.
	verdictLen       = nlmsgHdrLen + nfgenHdrLen + nlaHdrLen + 8
	markedVerdictLen = verdictLen + nlaHdrLen + 4
)

// packetMsg is one queued packet as the kernel described it. Its payload
// aliases the receive buffer.
type packetMsg struct {
	id      uint32
	hwProto uint16
	hook    uint8
	hasHdr  bool
	hasMark bool
	mark    uint32
	skbInfo uint32 // NFQA_SKB_INFO flags; 0 when absent
	capLen  uint32 // the packet's length when the kernel cut the payload; 0 when whole
	payload []byte // nil when absent
}

// nextMessage splits the first netlink message off b. It returns the
// message's type and body (after the nlmsghdr) and what follows it. When
// b's first message claims more bytes than b holds, whole is false and body
// is the part that is there (a datagram cut by the receive buffer, or a
// hostile length); ok is false when b does not even hold a header, or the
// header's length is smaller than a header.
func nextMessage(b []byte) (typ uint16, body, rest []byte, whole, ok bool) {
	if len(b) < nlmsgHdrLen {
		return 0, nil, nil, false, false
	}
	l := binary.NativeEndian.Uint32(b[0:4])
	typ = binary.NativeEndian.Uint16(b[4:6])
	if l < nlmsgHdrLen {
		return typ, nil, nil, false, false
	}
	if uint64(l) > uint64(len(b)) {
		return typ, b[nlmsgHdrLen:], nil, false, true
	}
	body = b[nlmsgHdrLen:l]
	next := (uint64(l) + 3) &^ 3
	if next < uint64(len(b)) {
		rest = b[next:]
	}
	return typ, body, rest, true, true
}

// parsePacket decodes an NFQNL_MSG_PACKET body into m, without
// allocating; attributes it does not use are skipped. It stops at the first
// attribute that runs past the body (a cut or hostile message) and reports
// whether the packet header, and so the packet id, was found.
func parsePacket(body []byte, m *packetMsg) bool {
	*m = packetMsg{}
	if len(body) < nfgenHdrLen {
		return false
	}
	b := body[nfgenHdrLen:]
	for len(b) >= nlaHdrLen {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		t := binary.NativeEndian.Uint16(b[2:4]) & nlaTypeMask
		if l < nlaHdrLen || l > len(b) {
			break
		}
		v := b[nlaHdrLen:l]
		switch t {
		case attrPacketHdr:
			if len(v) >= 7 {
				m.id = binary.BigEndian.Uint32(v[0:4])
				m.hwProto = binary.BigEndian.Uint16(v[4:6])
				m.hook = v[6]
				m.hasHdr = true
			}
		case attrMark:
			if len(v) >= 4 {
				m.mark = binary.BigEndian.Uint32(v)
				m.hasMark = true
			}
		case attrPayload:
			m.payload = v
		case attrCapLen:
			if len(v) >= 4 {
				m.capLen = binary.BigEndian.Uint32(v)
			}
		case attrSkbInfo:
			if len(v) >= 4 {
				m.skbInfo = binary.BigEndian.Uint32(v)
			}
		}
		adv := (l + 3) &^ 3
		if adv >= len(b) {
			break
		}
		b = b[adv:]
	}
	return m.hasHdr
}

// errorCode returns the errno of an NLMSG_ERROR body (0: an
// acknowledgement) and whether the body holds one.
func errorCode(body []byte) (errno int32, ok bool) {
	if len(body) < 4 {
		return 0, false
	}
	return -int32(binary.NativeEndian.Uint32(body[0:4])), true
}

// appendVerdict appends one verdict message for queue to b: typ is
// msgVerdict (packet id) or msgVerdictBatch (every packet up to id);
// with hasMark it also sets the packet mark.
func appendVerdict(b []byte, typ uint16, queue uint16, id, verdict uint32, mark uint32, hasMark bool) []byte {
	n := verdictLen
	if hasMark {
		n = markedVerdictLen
	}
	start := len(b)
	for i := 0; i < n; i++ {
		b = append(b, 0)
	}
	m := b[start:]
	binary.NativeEndian.PutUint32(m[0:4], uint32(n))
	binary.NativeEndian.PutUint16(m[4:6], typ)
	binary.NativeEndian.PutUint16(m[6:8], nlmRequest)
	// seq and pid stay 0: the kernel does not answer verdicts unless they fail.
	g := m[nlmsgHdrLen:]
	g[0] = 0 // AF_UNSPEC, as go-nfqueue binds the queue
	g[1] = 0 // NFNETLINK_V0
	binary.BigEndian.PutUint16(g[2:4], queue)
	a := g[nfgenHdrLen:]
	binary.NativeEndian.PutUint16(a[0:2], nlaHdrLen+8)
	binary.NativeEndian.PutUint16(a[2:4], attrVerdictHdr)
	binary.BigEndian.PutUint32(a[4:8], verdict)
	binary.BigEndian.PutUint32(a[8:12], id)
	if hasMark {
		a = a[nlaHdrLen+8:]
		binary.NativeEndian.PutUint16(a[0:2], nlaHdrLen+4)
		binary.NativeEndian.PutUint16(a[2:4], attrMark)
		binary.BigEndian.PutUint32(a[4:8], mark)
	}
	return b
}
