package engine

import (
	"bytes"

	"github.com/openutm/utm/dataplane/flow"
	"github.com/openutm/utm/dataplane/http1"
	"github.com/openutm/utm/dataplane/packet"
	"github.com/openutm/utm/dataplane/stream"
	"github.com/openutm/utm/signatures/bundle"
)

type appProto uint8

const (
	appUnknown appProto = iota
	appHTTP
	appDNS
	appOpaque // not a protocol we parse: only packet rules and intel apply
)

func (a appProto) String() string {
	switch a {
	case appHTTP:
		return "http"
	case appDNS:
		return "dns"
	}
	return ""
}

// flowState is the engine's per-flow state, kept in flow.Flow.Ext and
// pooled.
type flowState struct {
	e           *Engine
	f           *flow.Flow
	app         appProto
	blocked     bool
	established bool
	midstream   bool
	synAck      bool

	tcp     [2]stream.Stream
	tcpInit [2]bool
	fin     [2]bool
	deliver [2]func([]byte)

	http    http1.Parser
	reqs    [4]reqMeta // requests waiting for their response, FIFO
	reqHead int
	reqN    int
	resp    reqMeta // the request the current response answers
	status  int
	file    [2]fileState

	alerted []int // sids already alerted on this flow
}

// reqMeta is what a file or an alert needs to know about a request. Buffers
// are reused across requests.
type reqMeta struct {
	method, host, uri []byte
}

func (m *reqMeta) set(r *http1.Request) {
	m.method = append(m.method[:0], r.Method...)
	m.host = append(m.host[:0], r.Host...)
	m.uri = append(m.uri[:0], r.URI...)
}

func (e *Engine) newFlowState(f *flow.Flow) *flowState {
	st, _ := e.pool.Get().(*flowState)
	if st == nil {
		st = &flowState{e: e}
		st.deliver[0] = func(b []byte) { st.data(0, b) }
		st.deliver[1] = func(b []byte) { st.data(1, b) }
		st.alerted = make([]int, 0, 4)
	}
	st.f = f
	f.Ext = st
	e.stats.Flows.Add(1)
	return st
}

// release is called by the flow table before it forgets f.
func (e *Engine) release(f *flow.Flow) {
	st, _ := f.Ext.(*flowState)
	if st == nil {
		return
	}
	if st.app == appHTTP {
		e.cur = pktCtx{st: st}
		st.http.Close()
		e.cur = pktCtx{}
	}
	for d := range st.file {
		e.dropFile(&st.file[d])
	}
	st.tcp[0].Reset() // out-of-order pages back to the pool
	st.tcp[1].Reset()
	f.Ext = nil
	st.f = nil
	st.app, st.blocked, st.established, st.midstream, st.synAck = appUnknown, false, false, false, false
	st.tcpInit = [2]bool{}
	st.fin = [2]bool{}
	st.reqHead, st.reqN, st.status = 0, 0, 0
	st.alerted = st.alerted[:0]
	e.pool.Put(st)
}

// next returns the next sequence number expected in direction d, or def when
// that direction was never seen.
func (st *flowState) next(d int, def uint32) uint32 {
	if st.tcpInit[d] {
		return st.tcp[d].Next()
	}
	return def
}

func (st *flowState) alertedOnce(sid int) bool {
	for _, s := range st.alerted {
		if s == sid {
			return true
		}
	}
	st.alerted = append(st.alerted, sid)
	return false
}

func (e *Engine) tcp(b *bundle.Bundle, st *flowState, dir int) {
	p := &e.p
	flags := p.TCPFlags
	if flags&packet.FlagSYN != 0 {
		if !st.tcpInit[dir] {
			st.tcp[dir].Init(p.Seq+1, e.cfg.StreamBuffer)
			st.tcpInit[dir] = true
		}
		if dir == 1 && flags&packet.FlagACK != 0 {
			st.synAck = true
		}
		return
	}
	if dir == 0 && st.synAck && flags&packet.FlagACK != 0 {
		st.established = true
	}
	if !st.tcpInit[dir] {
		// We did not see this direction start (the engine restarted, or
		// the flow table evicted it): follow from here but do not parse
		// the application protocol from the middle of a message.
		st.tcp[dir].Init(p.Seq, e.cfg.StreamBuffer)
		st.tcpInit[dir] = true
		st.midstream = true
		st.established = true
		if st.app == appUnknown {
			st.app = appOpaque
			e.stats.Midstream.Add(1)
		}
	}
	if len(p.Payload) > 0 {
		res := st.tcp[dir].Push(p.Seq, p.Payload, st.deliver[dir])
		if res == stream.Overflow {
			e.stats.StreamOverflow.Add(1)
		}
	}
	if flags&(packet.FlagFIN|packet.FlagRST) != 0 && !st.fin[dir] {
		st.fin[dir] = true
		if st.app == appHTTP {
			// A body delimited by the close ends here; this packet is held
			// until the file's verdict.
			st.http.Close()
		}
	}
}

// data receives in-order stream bytes of direction d.
func (st *flowState) data(d int, b []byte) {
	e := st.e
	if st.app == appUnknown {
		if d == 0 && looksHTTP(b) {
			st.app = appHTTP
			st.http.Init(st)
		} else {
			st.app = appOpaque
		}
	}
	if st.app != appHTTP || e.cur.verdict != Accept {
		return
	}
	st.http.Feed(http1.Dir(d), b)
}

var httpMethods = [][]byte{
	[]byte("GET "), []byte("POST "), []byte("HEAD "), []byte("PUT "), []byte("DELETE "),
	[]byte("OPTIONS "), []byte("PATCH "), []byte("CONNECT "), []byte("TRACE "),
}

func looksHTTP(b []byte) bool {
	for _, m := range httpMethods {
		n := min(len(m), len(b))
		if bytes.Equal(b[:n], m[:n]) && n > 0 {
			return true
		}
	}
	return false
}
