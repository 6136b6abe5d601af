//go:build linux

package maillab

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/openutm/utm/dataplane/mail"
)

// TapMessage is a message the relay's parser delivered.
type TapMessage struct {
	Dir      mail.Dir
	Env      mail.Envelope
	Data     []byte
	Complete bool
	// Held is the chunk (one read from the sender) in whose Feed
	// MessageEnd fired: the bytes an inline engine holds until the verdict.
	Held []byte
	// AtEnd is what RelayOptions.OnEnd returned when MessageEnd fired,
	// before Held went on.
	AtEnd any
}

// RelayOptions configure StartRelay.
type RelayOptions struct {
	Proto mail.Proto
	// CutOnEnd drops the chunk that completes a message and resets both
	// connections, as the inline engine does with a malicious message.
	CutOnEnd bool
	// OnEnd, if set, runs inside MessageEnd(true), before the chunk that
	// carries the message's end is forwarded.
	OnEnd func() any
}

// Relay is an in-process TCP relay in a namespace that tees both
// directions of every connection into a mail.Parser, feeding each chunk
// before forwarding it (the order an inline engine sees).
type Relay struct {
	Addr string
	o    RelayOptions

	mu     sync.Mutex
	msgs   []TapMessage
	events []string
	wg     sync.WaitGroup
	conns  sync.WaitGroup
}

// StartRelay listens on listen inside namespace ns and relays every
// connection to target. It stops at cleanup.
func StartRelay(t testing.TB, ns, listen, target string, o RelayOptions) *Relay {
	t.Helper()
	r := &Relay{Addr: listen, o: o}
	l := Listen(t, ns, listen)
	h := handle(t, ns)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("relay accept: %v", err)
				}
				return
			}
			s, err := Dial(h, target)
			if err != nil {
				t.Errorf("relay: connect to %s: %v", target, err)
				c.Close()
				continue
			}
			r.wg.Add(1)
			r.conns.Add(1)
			go func() {
				defer r.wg.Done()
				defer r.conns.Done()
				r.serve(c.(*net.TCPConn), s.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		r.wg.Wait()
	})
	return r
}

// Messages returns the messages the parser delivered so far.
func (r *Relay) Messages() []TapMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]TapMessage(nil), r.msgs...)
}

// Events returns "encrypted", "anomaly: ...", "broken" and "cut" events.
func (r *Relay) Events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// Wait waits until every connection relayed so far has ended.
func (r *Relay) Wait() { r.conns.Wait() }

type tap struct {
	r     *Relay
	cur   *TapMessage
	chunk []byte
	cut   bool
}

func (h *tap) MessageStart(d mail.Dir, env *mail.Envelope) {
	h.cur = &TapMessage{Dir: d, Env: mail.Envelope{MailFrom: env.MailFrom, RcptTo: append([]string(nil), env.RcptTo...), Command: env.Command}}
}

func (h *tap) MessageData(b []byte) { h.cur.Data = append(h.cur.Data, b...) }

func (h *tap) MessageEnd(complete bool) {
	m := h.cur
	h.cur = nil
	m.Complete = complete
	if complete {
		m.Held = append([]byte(nil), h.chunk...)
		if h.r.o.OnEnd != nil {
			m.AtEnd = h.r.o.OnEnd()
		}
		if h.r.o.CutOnEnd {
			h.cut = true
		}
	}
	h.r.mu.Lock()
	h.r.msgs = append(h.r.msgs, *m)
	h.r.mu.Unlock()
}

func (h *tap) Encrypted() { h.r.event("encrypted") }

func (h *tap) Anomaly(what string) { h.r.event("anomaly: " + what) }

func (r *Relay) event(e string) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *Relay) serve(c, s *net.TCPConn) {
	var (
		mu sync.Mutex
		p  mail.Parser
		h  = &tap{r: r}
		wg sync.WaitGroup
	)
	p.Init(r.o.Proto, h)
	reset := func() {
		c.SetLinger(0)
		s.SetLinger(0)
		c.Close()
		s.Close()
	}
	pump := func(src, dst *net.TCPConn, d mail.Dir) {
		defer wg.Done()
		buf := make([]byte, 16<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				mu.Lock()
				h.chunk = buf[:n]
				p.Feed(d, buf[:n])
				cut := h.cut
				mu.Unlock()
				if cut {
					r.event("cut")
					reset()
					return
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					reset()
					return
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					dst.CloseWrite()
				} else {
					reset()
				}
				return
			}
		}
	}
	wg.Add(2)
	go pump(c, s, mail.ToServer)
	go pump(s, c, mail.ToClient)
	wg.Wait()
	c.Close()
	s.Close()
	mu.Lock()
	p.Close()
	if p.Broken() {
		r.event("broken")
	}
	mu.Unlock()
}
