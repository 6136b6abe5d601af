//go:build linux

package nfq

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openutm/utm/dataplane/internal/nslab"
	"github.com/openutm/utm/dataplane/packet"
)

var update = flag.Bool("update", false, "record testdata/*.nlmsg from a real queue in a netns (root) and rewrite the golden files")

// parsed is what the walker reads from one captured message.
type parsed struct {
	Type          uint16
	Whole         bool
	ID            uint32 `json:",omitempty"`
	HwProto       uint16 `json:",omitempty"`
	Hook          uint8  `json:",omitempty"`
	Mark          uint32 `json:",omitempty"`
	HasMark       bool   `json:",omitempty"`
	SkbInfo       uint32 `json:",omitempty"`
	CapLen        uint32 `json:",omitempty"`
	PayloadLen    int
	PayloadSHA256 string `json:",omitempty"`
}

func walk(data []byte) []parsed {
	var out []parsed
	for b := data; len(b) > 0; {
		typ, body, rest, whole, ok := nextMessage(b)
		if !ok {
			break
		}
		p := parsed{Type: typ, Whole: whole}
		var m packetMsg
		if typ == msgPacket && parsePacket(body, &m) {
			p.ID, p.HwProto, p.Hook, p.Mark, p.HasMark, p.SkbInfo, p.CapLen = m.id, m.hwProto, m.hook, m.mark, m.hasMark, m.skbInfo, m.capLen
			p.PayloadLen = len(m.payload)
			sum := sha256.Sum256(m.payload)
			p.PayloadSHA256 = hex.EncodeToString(sum[:])
		}
		out = append(out, p)
		b = rest
	}
	return out
}

// TestCaptured parses messages recorded from a real queue (a UDP
// datagram, a TCP SYN and a GSO super-packet of a bulk TCP transfer, as
// the kernel queued them in the router of a netns lab) and compares with
// the golden files; -update (as root) records them again.
func TestCaptured(t *testing.T) {
	if *update {
		record(t)
	}
	files, _ := filepath.Glob("testdata/*.nlmsg")
	if len(files) < 3 {
		t.Fatalf("%d testdata/*.nlmsg files; record them: go test -run TestCaptured -update ./dataplane/nfq/ (as root)", len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".nlmsg")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got := walk(data)
			if len(got) != 1 || got[0].Type != msgPacket || !got[0].Whole || got[0].ID == 0 {
				t.Fatalf("want one whole packet message with an id, got %+v", got)
			}
			g := got[0]
			if g.HwProto != 0x0800 || g.Hook != 2 {
				t.Errorf("hw protocol %#x hook %d, want IPv4 (0x800) on FORWARD (2)", g.HwProto, g.Hook)
			}
			// The payload the handler would get is the whole IP packet.
			var m packetMsg
			_, body, _, _, _ := nextMessage(data)
			parsePacket(body, &m)
			var p packet.Parsed
			if p.Decode(m.payload) != packet.OK {
				t.Fatalf("payload does not decode as an IP packet")
			}
			switch name {
			case "udp":
				if p.Proto != packet.ProtoUDP || string(p.Payload) != "hello queue" {
					t.Errorf("udp sample: proto %v payload %q", p.Proto, p.Payload)
				}
			case "tcp-syn":
				if p.Proto != packet.ProtoTCP || p.TCPFlags&packet.FlagSYN == 0 {
					t.Errorf("tcp-syn sample: proto %v flags %#x", p.Proto, p.TCPFlags)
				}
			case "tcp-gso":
				if g.SkbInfo&skbGSO == 0 || g.PayloadLen <= 1500 {
					t.Errorf("tcp-gso sample: skb info %#x, payload %d bytes; want the GSO flag and more than one MTU", g.SkbInfo, g.PayloadLen)
				}
			}
			js, _ := json.MarshalIndent(got, "", "  ")
			js = append(js, '\n')
			gf := strings.TrimSuffix(f, ".nlmsg") + ".golden.json"
			if *update {
				if err := os.WriteFile(gf, js, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(gf)
			if err != nil {
				t.Fatalf("%v (refresh with -update)", err)
			}
			if !bytes.Equal(js, want) {
				t.Errorf("parsed %s, golden %s (refresh with -update if the change is right)", js, want)
			}
		})
	}
}

// record captures the samples from a real queue.
func record(t *testing.T) {
	l := nslab.New(t)
	steer(t, l)
	sink := netip.AddrPortFrom(nslab.ServerAddr, 8081)
	var ln net.Listener
	if err := nslab.Do(l.Server, func() (err error) { ln, err = net.Listen("tcp4", sink.String()); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()

	var mu sync.Mutex
	got := map[string][]byte{}
	q, err := Open(Config{Queue: queueNum, NetNS: int(l.Router), FailOpen: true}, func([]byte) Verdict { return Accept })
	if err != nil {
		t.Fatal(err)
	}
	q.tap = func(b []byte) {
		_, body, _, whole, ok := nextMessage(b)
		var m packetMsg
		var p packet.Parsed
		if !ok || !whole || !parsePacket(body, &m) || p.Decode(m.payload) != packet.OK {
			return
		}
		name := ""
		switch {
		case p.Proto == packet.ProtoUDP && string(p.Payload) == "hello queue":
			name = "udp"
		case p.Proto == packet.ProtoTCP && p.TCPFlags&packet.FlagSYN != 0 && p.TCPFlags&packet.FlagACK == 0:
			name = "tcp-syn"
		case p.Proto == packet.ProtoTCP && m.skbInfo&skbGSO != 0:
			name = "tcp-gso"
		default:
			return
		}
		mu.Lock()
		if got[name] == nil {
			got[name] = append([]byte(nil), b...)
		}
		mu.Unlock()
	}
	runQueue(t, q)
	for deadline := time.Now().Add(5 * time.Second); !q.tookOver.Load(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the receive loop did not take over within 5 s")
		}
	}

	err = nslab.Do(l.Client, func() error {
		u, err := net.Dial("udp4", netip.AddrPortFrom(nslab.ServerAddr, 5353).String())
		if err != nil {
			return err
		}
		u.Write([]byte("hello queue"))
		u.Close()
		c, err := net.DialTimeout("tcp4", sink.String(), 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Write(make([]byte, 1<<20))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("captured only %v of udp, tcp-syn, tcp-gso (is GSO off on the lab's veths?)", keys(got))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	os.MkdirAll("testdata/fuzz/FuzzMessages", 0o755)
	for name, b := range got {
		if err := os.WriteFile("testdata/"+name+".nlmsg", b, 0o644); err != nil {
			t.Fatal(err)
		}
		if len(b) < 512 { // small real messages seed the fuzzer
			seed := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
			os.WriteFile("testdata/fuzz/FuzzMessages/"+name, []byte(seed), 0o644)
		}
	}
}

func keys(m map[string][]byte) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	return k
}

// runQueue runs q until the test ends.
func runQueue(t *testing.T, q *Queue) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- q.Run(t.Context()) }()
	select {
	case <-q.Bound():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the queue was not bound within 5 s")
	}
	t.Cleanup(func() {
		q.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// FuzzMessages feeds hostile datagrams to the message walker and to the
// queue's datagram handler: no panic, the walker always advances, the
// handler only ever sees a payload inside the datagram.
func FuzzMessages(f *testing.F) {
	f.Add(packetMessage(1, []byte("x"), 7, skbGSO))
	two := append(packetMessage(1, []byte("a"), 0, 0), packetMessage(2, []byte("b"), 0, 0)...)
	f.Add(two)
	f.Add(two[:len(two)-3])
	rc, _, _ := socketPair(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		steps := 0
		for b := data; len(b) > 0; {
			_, body, rest, whole, ok := nextMessage(b)
			if !ok {
				break
			}
			if steps++; steps > len(data)/nlmsgHdrLen {
				t.Fatalf("the walker took %d steps over %d bytes", steps, len(data))
			}
			var m packetMsg
			if parsePacket(body, &m) && len(m.payload) > len(body) {
				t.Fatalf("payload of %d bytes in a body of %d", len(m.payload), len(body))
			}
			if !whole {
				break
			}
			if len(rest) >= len(b) {
				t.Fatalf("the walker did not advance")
			}
			b = rest
		}
		q := newQueue(Config{Queue: queueNum, Batch: 4, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
			func(pkt []byte) Verdict {
				if len(pkt) > len(data) {
					t.Fatalf("handler got %d bytes from a %d byte datagram", len(pkt), len(data))
				}
				return Verdict(len(pkt) % 3)
			}, rc)
		q.datagram(data, false)
		q.datagram(data, true)
	})
}
