package engine

import (
	"errors"
	"sync/atomic"

	"github.com/openutm/utm/dataplane/quic"
	"github.com/openutm/utm/dataplane/tlshello"
)

// QUIC (HTTP/3): a UDP flow whose first client datagram is a padded Initial
// packet of QUIC version 1 or 2 is followed until its ClientHello is read
// from the Initial packets' CRYPTO frames (package quic). The hello goes
// through what a TLS ClientHello over TCP goes through (tls.go): its SNI,
// JA3 and JA4 against the threat intelligence (a listed name is blocked,
// the browser then falls back to TCP, where it is blocked again), the
// ClientHello rules, and its metadata in the flow's alerts. The rest of a
// QUIC connection is encrypted: the flow is bypassed once the hello is
// through. A hello that cannot be read within quicMaxPackets client
// packets leaves the flow opaque (quic_unreadable).

// quicMaxPackets is how many client packets may pass before a QUIC
// connection's ClientHello is complete.
const quicMaxPackets = 6

// quicFlow is a QUIC flow's handshake state, taken from the engine's pool
// while the ClientHello is read.
type quicFlow struct {
	c quic.Client
	n int // client packets read
}

// QUICStats counts QUIC handshakes.
type QUICStats struct {
	Hellos     atomic.Uint64 // ClientHellos read from Initial packets
	Unreadable atomic.Uint64 // connections whose ClientHello could not be read
}

// quicPacket follows the client's Initial packets of a QUIC flow.
func (e *Engine) quicPacket(st *flowState, dir int) {
	if dir != 0 {
		return
	}
	if st.quic == nil {
		st.quic = poolGet[quicFlow](&e.quicPool)
	}
	if st.hello == nil {
		st.hello = poolGet[tlshello.Parser](&e.helloPool)
	}
	st.hello.QUIC = true
	q := st.quic
	q.n++
	b, err := q.c.Packet(e.p.Payload)
	var ev tlshello.Event
	if len(b) > 0 {
		ev = st.hello.FeedHandshake(0, b)
	}
	if ev != 0 {
		st.tlsEvents(ev) // tls.go
	}
	switch {
	case ev&tlshello.ClientHello != 0:
		e.stats.QUIC.Hellos.Add(1)
		e.endQUIC(st)
		if e.cur.verdict == Accept {
			e.bypassFlow(st, &e.stats.Stream.BypassQUIC)
		}
	case errors.Is(err, quic.ErrTooLong) || errors.Is(err, quic.ErrMalformed) || st.hello.Done(0) || q.n >= quicMaxPackets:
		e.stats.QUIC.Unreadable.Add(1)
		e.endQUIC(st)
		st.app = appOpaque
	}
}

// endQUIC stops following the flow's QUIC handshake. A flow whose hello
// was read is bypassed or blocked, one whose hello could not be read is
// opaque: quicPacket is not called for it again.
func (e *Engine) endQUIC(st *flowState) {
	if q := st.quic; q != nil {
		q.c.Reset()
		q.n = 0
		e.quicPool.Put(q)
		st.quic = nil
	}
}
