// Package quic reads the TLS handshake a QUIC client opens with (RFC 9000,
// RFC 9001; QUIC version 1 and version 2, RFC 9369).
//
// A QUIC connection's Initial packets are protected with keys derived from
// the Destination Connection ID the client chose, which travels in clear:
// anyone on the path can remove that protection, so the ClientHello (its
// server name, ALPN, fingerprint) is as visible as over TCP, while
// everything after the handshake is not. Client follows the client's
// Initial packets of one connection and hands back its CRYPTO stream in
// order, for a TLS handshake parser (tlshello.Parser.FeedHandshake).
//
// Cost: the keys of a connection are derived once (a few allocations per
// connection, none per packet after that); packets are opened into the
// Client's own buffer, never in place, since the packet is forwarded as
// it came.
package quic

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
)

// Versions whose Initial packets can be read.
const (
	Version1 = 0x00000001
	Version2 = 0x6b3343cf
)

// MaxCrypto caps the CRYPTO stream kept per connection: a ClientHello with
// a post-quantum key share is about 1.8 KB, the largest seen a few KB.
const MaxCrypto = 8 << 10

// MinInitial is the smallest UDP payload that carries a client's Initial
// packet: clients pad it to 1,200 bytes (RFC 9000 14.1).
const MinInitial = 1200

var (
	saltV1 = []byte{0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a}
	saltV2 = []byte{0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9}
)

// Errors of Packet. A datagram that is not a client Initial is not an
// error: Packet returns nothing new.
var (
	ErrMalformed = errors.New("quic: malformed long header or frame")
	ErrDecrypt   = errors.New("quic: Initial packet does not open with its connection ID's keys")
	ErrTooLong   = errors.New("quic: CRYPTO data past MaxCrypto")
)

// LooksInitial reports whether a UDP payload starts with a client's
// Initial packet of a known version, padded as clients must pad it.
func LooksInitial(b []byte) bool {
	if len(b) < MinInitial || b[0]&0xc0 != 0xc0 {
		return false
	}
	v := binary.BigEndian.Uint32(b[1:5])
	typ := b[0] >> 4 & 3
	return v == Version1 && typ == 0 || v == Version2 && typ == 1
}

// keys are the client's Initial packet protection for one connection ID.
type keys struct {
	dcid [20]byte
	n    int
	aead cipher.AEAD
	iv   [12]byte
	hp   cipher.Block
}

// Client follows the client side of one QUIC connection's handshake. The
// zero value is ready; Reset readies it for another connection.
type Client struct {
	k      *keys
	ver    uint32
	crypto [MaxCrypto]byte
	have   [MaxCrypto / 64]uint64 // bytes of crypto received
	next   int                    // crypto[:next] was handed back
	hdr    []byte                 // the header being unprotected
	plain  []byte                 // the payload being opened
	mask   [16]byte               // kept here, not on the stack: the cipher
	nonce  [12]byte               // interfaces would move them to the heap
}

// Reset forgets the connection, keeping the buffers (and the last keys,
// derived again only for another connection ID).
func (c *Client) Reset() {
	c.next = 0
	c.have = [len(c.have)]uint64{}
}

// Packet reads the client's Initial packets in one UDP payload (a datagram
// may coalesce several packets) and returns the CRYPTO bytes that became
// contiguous: the next bytes of the client's handshake. The slice is valid
// until the next call. Packets other than Initial, and Initial packets that
// do not open (sent after the server chose its own connection ID), are
// passed over.
func (c *Client) Packet(b []byte) ([]byte, error) {
	from := c.next
	var err error
	for len(b) > 0 && b[0]&0x80 != 0 {
		var rest []byte
		rest, err = c.packet(b)
		if err != nil {
			break
		}
		b = rest
	}
	for c.next < MaxCrypto && c.have[c.next/64]&(1<<(c.next%64)) != 0 {
		c.next++
	}
	return c.crypto[from:c.next], err
}

// packet reads one long-header packet and returns the bytes after it.
func (c *Client) packet(b []byte) ([]byte, error) {
	if len(b) < 7 {
		return nil, ErrMalformed
	}
	ver := binary.BigEndian.Uint32(b[1:5])
	typ := b[0] >> 4 & 3
	initial := ver == Version1 && typ == 0 || ver == Version2 && typ == 1
	p := 5
	dcidLen := int(b[p])
	p++
	if dcidLen > 20 || len(b) < p+dcidLen+1 {
		return nil, ErrMalformed
	}
	dcid := b[p : p+dcidLen]
	p += dcidLen
	scidLen := int(b[p])
	p += 1 + scidLen
	if scidLen > 20 || len(b) < p {
		return nil, ErrMalformed
	}
	if ver != Version1 && ver != Version2 {
		return nil, ErrMalformed // unknown version: its layout past the IDs is unknown
	}
	if typ == 3 && ver == Version1 || typ == 0 && ver == Version2 {
		return nil, nil // Retry: nothing follows it in the datagram
	}
	if initial {
		tokLen, n := varint(b[p:])
		if n == 0 || uint64(len(b)-p-n) < tokLen {
			return nil, ErrMalformed
		}
		p += n + int(tokLen)
	}
	length, n := varint(b[p:])
	if n == 0 || uint64(len(b)-p-n) < length {
		return nil, ErrMalformed
	}
	p += n
	end := p + int(length)
	if !initial {
		return b[end:], nil
	}
	if err := c.open(b[:end], p, dcid, ver); err != nil {
		return b[end:], err
	}
	return b[end:], c.frames(c.plain)
}

// open removes the header protection of the Initial packet pkt, whose
// packet number starts at pn, and decrypts its payload into c.plain.
func (c *Client) open(pkt []byte, pn int, dcid []byte, ver uint32) error {
	if len(pkt) < pn+4+16 {
		return ErrMalformed
	}
	k := c.keysFor(dcid, ver)
	mask := &c.mask
	k.hp.Encrypt(mask[:], pkt[pn+4:pn+4+16])
	c.hdr = append(c.hdr[:0], pkt[:pn+4]...)
	c.hdr[0] ^= mask[0] & 0x0f
	pnLen := int(c.hdr[0]&3) + 1
	c.hdr = c.hdr[:pn+pnLen]
	var num uint64
	for i := range pnLen {
		c.hdr[pn+i] ^= mask[1+i]
		num = num<<8 | uint64(c.hdr[pn+i])
	}
	c.nonce = k.iv
	for i := range 8 {
		c.nonce[11-i] ^= byte(num >> (8 * i))
	}
	var err error
	c.plain, err = k.aead.Open(c.plain[:0], c.nonce[:], pkt[pn+pnLen:], c.hdr)
	if err != nil {
		return ErrDecrypt
	}
	return nil
}

// keysFor returns the client Initial keys of connection ID dcid, derived
// once per connection ID.
func (c *Client) keysFor(dcid []byte, ver uint32) *keys {
	if k := c.k; k != nil && c.ver == ver && string(k.dcid[:k.n]) == string(dcid) {
		return k
	}
	key, iv, hp := InitialKeys(dcid, ver)
	k := &keys{}
	k.n = copy(k.dcid[:], dcid)
	block, _ := aes.NewCipher(key) // 16 bytes: cannot fail
	k.aead, _ = cipher.NewGCM(block)
	copy(k.iv[:], iv)
	k.hp, _ = aes.NewCipher(hp)
	c.k, c.ver = k, ver
	return k
}

// InitialKeys derives the client's Initial packet key, IV and header
// protection key from the connection ID the client chose (RFC 9001 5.2,
// RFC 9369 3.3), for version ver.
func InitialKeys(dcid []byte, ver uint32) (key, iv, hp []byte) {
	salt, prefix := saltV1, "quic "
	if ver == Version2 {
		salt, prefix = saltV2, "quicv2 "
	}
	initial, _ := hkdf.Extract(sha256.New, dcid, salt)
	secret := expandLabel(initial, "client in", 32)
	return expandLabel(secret, prefix+"key", 16), expandLabel(secret, prefix+"iv", 12), expandLabel(secret, prefix+"hp", 16)
}

// expandLabel is TLS 1.3's HKDF-Expand-Label with an empty context
// (RFC 8446 7.1), SHA-256.
func expandLabel(secret []byte, label string, n int) []byte {
	info := make([]byte, 0, 4+6+len(label))
	info = append(info, byte(n>>8), byte(n), byte(6+len(label)))
	info = append(info, "tls13 "...)
	info = append(info, label...)
	info = append(info, 0)
	out, _ := hkdf.Expand(sha256.New, secret, string(info), n)
	return out
}

// frames takes the CRYPTO frames of a decrypted Initial payload; PADDING,
// PING, ACK and CONNECTION_CLOSE are passed over (nothing else may be in
// an Initial packet).
func (c *Client) frames(b []byte) error {
	for len(b) > 0 {
		typ, n := varint(b)
		if n == 0 {
			return ErrMalformed
		}
		b = b[n:]
		switch typ {
		case 0x00, 0x01: // PADDING, PING
		case 0x02, 0x03: // ACK: largest, delay, range count, first range, ranges, [ECN counts]
			var v [4]uint64
			for i := range v {
				if v[i], n = varint(b); n == 0 {
					return ErrMalformed
				}
				b = b[n:]
			}
			more := 2 * v[2]
			if typ == 0x03 {
				more += 3
			}
			for ; more > 0; more-- {
				if _, n = varint(b); n == 0 {
					return ErrMalformed
				}
				b = b[n:]
			}
		case 0x06: // CRYPTO: offset, length, data
			off, n1 := varint(b)
			if n1 == 0 {
				return ErrMalformed
			}
			l, n2 := varint(b[n1:])
			if n2 == 0 || uint64(len(b)-n1-n2) < l {
				return ErrMalformed
			}
			data := b[n1+n2 : n1+n2+int(l)]
			b = b[n1+n2+int(l):]
			if off+l > MaxCrypto {
				return ErrTooLong
			}
			copy(c.crypto[off:], data)
			for i := int(off); i < int(off+l); i++ {
				c.have[i/64] |= 1 << (i % 64)
			}
		case 0x1c: // CONNECTION_CLOSE: error code, frame type, reason length, reason
			var v [3]uint64
			for i := range v {
				if v[i], n = varint(b); n == 0 {
					return ErrMalformed
				}
				b = b[n:]
			}
			if uint64(len(b)) < v[2] {
				return ErrMalformed
			}
			b = b[v[2]:]
		default:
			return ErrMalformed
		}
	}
	return nil
}

// varint reads a QUIC variable-length integer (RFC 9000 16); n is 0 when b
// is too short.
func varint(b []byte) (v uint64, n int) {
	if len(b) == 0 {
		return 0, 0
	}
	n = 1 << (b[0] >> 6)
	if len(b) < n {
		return 0, 0
	}
	v = uint64(b[0] & 0x3f)
	for _, x := range b[1:n] {
		v = v<<8 | uint64(x)
	}
	return v, n
}
