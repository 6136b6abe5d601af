// Package quictest makes a QUIC client's first packets for tests: a real
// ClientHello (crypto/tls as a QUIC client), cut into CRYPTO frames, and
// sealed into Initial packets as RFC 9001 5 describes, with the keys
// package quic derives (checked there against the RFCs' worked examples).
package quictest

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/tls"
	"encoding/binary"
	"testing"

	"github.com/openutm/utm/dataplane/quic"
)

// ClientHello returns the ClientHello crypto/tls sends as a QUIC client
// (ALPN h3) to name.
func ClientHello(t testing.TB, name string) []byte {
	t.Helper()
	q := tls.QUICClient(&tls.QUICConfig{TLSConfig: &tls.Config{ServerName: name, NextProtos: []string{"h3"}, MinVersion: tls.VersionTLS13}})
	q.SetTransportParameters([]byte{0x01, 0x02, 0x67, 0x10}) // max_idle_timeout
	if err := q.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var hello []byte
	for ev := q.NextEvent(); ev.Kind != tls.QUICNoEvent; ev = q.NextEvent() {
		if ev.Kind == tls.QUICWriteData && ev.Level == tls.QUICEncryptionLevelInitial {
			hello = append(hello, ev.Data...)
		}
	}
	if len(hello) < 4 || hello[0] != 1 {
		t.Fatalf("crypto/tls wrote no ClientHello (%d bytes)", len(hello))
	}
	return hello
}

// Crypto is a CRYPTO frame carrying data at off.
func Crypto(off int, data []byte) []byte {
	f := []byte{0x06, 0, 0, 0, 0, 0x40 | byte(len(data)>>8), byte(len(data))} // 4-byte offset, 2-byte length
	binary.BigEndian.PutUint32(f[1:5], uint32(off)|0x80<<24)
	return append(f, data...)
}

// Initial seals frames as the client's Initial packet number pn of
// version ver to connection ID dcid, with PADDING up to pad bytes.
func Initial(ver uint32, dcid []byte, pn uint32, frames []byte, pad int) []byte {
	typ := byte(0)
	if ver == quic.Version2 {
		typ = 1
	}
	hdr := []byte{0xc0 | typ<<4 | 3, 0, 0, 0, 0, byte(len(dcid))}
	binary.BigEndian.PutUint32(hdr[1:5], ver)
	hdr = append(hdr, dcid...)
	hdr = append(hdr, 0, 0) // no source connection ID, no token
	pnOff := len(hdr) + 2
	frames = append([]byte(nil), frames...)
	if n := pad - (pnOff + 4 + len(frames) + 16); n > 0 {
		frames = append(frames, make([]byte, n)...)
	}
	l := 4 + len(frames) + 16
	hdr = append(hdr, 0x40|byte(l>>8), byte(l))
	hdr = binary.BigEndian.AppendUint32(hdr, pn)
	key, iv, hp := quic.InitialKeys(dcid, ver)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	nonce := append([]byte(nil), iv...)
	for i := range 4 {
		nonce[11-i] ^= byte(pn >> (8 * i))
	}
	pkt := aead.Seal(append([]byte(nil), hdr...), nonce, frames, hdr)
	hpb, _ := aes.NewCipher(hp)
	var mask [16]byte
	hpb.Encrypt(mask[:], pkt[pnOff+4:pnOff+20])
	pkt[0] ^= mask[0] & 0x0f
	for i := range 4 {
		pkt[pnOff+i] ^= mask[1+i]
	}
	return pkt
}

// Flight returns a client's first flight to name as two datagrams, the
// hello's CRYPTO frames out of order across them as Chrome scatters them:
// the first datagram padded to quic.MinInitial.
func Flight(t testing.TB, ver uint32, dcid []byte, name string) [2][]byte {
	hello := ClientHello(t, name)
	a, b := len(hello)/3, 2*len(hello)/3
	return [2][]byte{
		Initial(ver, dcid, 0, append(Crypto(a, hello[a:b]), append([]byte{0x01}, Crypto(0, hello[:a])...)...), quic.MinInitial),
		Initial(ver, dcid, 1, Crypto(b, hello[b:]), quic.MinInitial),
	}
}
