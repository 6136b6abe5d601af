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

// quicDone marks a flow whose QUIC handshake is no longer followed.
const quicDone = 0xff

// QUICStats counts QUIC handshakes.
type QUICStats struct {
	Hellos     atomic.Uint64 // ClientHellos read from Initial packets
	Unreadable atomic.Uint64 // connections whose ClientHello could not be read
}

// quicPacket follows the client's Initial packets of a QUIC flow.
func (e *Engine) quicPacket(st *flowState, dir int) {
	if dir != 0 || st.quicN == quicDone {
		return
	}
	if st.quic == nil {
		st.quic = poolGet[quic.Client](&e.quicPool)
	}
	if st.hello == nil {
		st.hello = poolGet[tlshello.Parser](&e.helloPool)
	}
	st.hello.QUIC = true
	st.quicN++
	b, err := st.quic.Packet(e.p.Payload)
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
	case errors.Is(err, quic.ErrTooLong) || errors.Is(err, quic.ErrMalformed) || st.hello.Done(0) || st.quicN >= quicMaxPackets:
		e.stats.QUIC.Unreadable.Add(1)
		e.endQUIC(st)
		st.app = appOpaque
	}
}

// endQUIC stops following the flow's QUIC handshake.
func (e *Engine) endQUIC(st *flowState) {
	st.quicN = quicDone
	if st.quic != nil {
		st.quic.Reset()
		e.quicPool.Put(st.quic)
		st.quic = nil
	}
}
