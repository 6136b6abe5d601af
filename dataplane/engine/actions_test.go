package engine

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	"github.com/openutm/utm/dataplane/internal/testpcap"
)

// unreach records resets and ICMP unreachables the engine asks for.
type unreach struct {
	resets
	pkts [][]byte
}

func (u *unreach) Unreachable(pkt []byte) error {
	u.pkts = append(u.pkts, append([]byte(nil), pkt...))
	return nil
}

const udpActionRules = `alert udp any any -> any 7001 (msg:"udp alert"; content:"BAD"; sid:9300001; rev:1;)
drop udp any any -> any 7002 (msg:"udp drop"; content:"BAD"; sid:9300002; rev:1;)
reject udp any any -> any 7003 (msg:"udp reject"; content:"BAD"; sid:9300003; rev:1;)
`

// TestUDPActions: alert lets the flow through (action allowed); drop drops
// the matching datagram and every later one of its flow, even clean ones
// (action blocked); reject does the same and answers the sender once with
// an ICMP unreachable quoting the rejected datagram; other flows are
// untouched.
func TestUDPActions(t *testing.T) {
	var u unreach
	var rec recorder
	e := New(Config{Sink: &rec, Reset: &u}, ruleBundle(t, udpActionRules))
	for _, port := range []int{7001, 7002, 7003} {
		tr := testpcap.NewTrace(t0)
		dst := fmt.Sprintf("198.18.2.2:%d", port)
		tr.UDP("198.18.1.2:5000", dst, []byte("hello"))
		tr.UDP("198.18.1.2:5000", dst, []byte("BAD one"))
		tr.UDP("198.18.1.2:5000", dst, []byte("clean again"))
		tr.UDP("198.18.1.2:5001", dst, []byte("other flow"))
		var got []Verdict
		var rejected []byte
		for i, p := range tr.Sorted() {
			got = append(got, e.Process(p.TS, p.Data))
			if i == 1 {
				rejected = p.Data
			}
		}
		want := map[int][]Verdict{
			7001: {Accept, Accept, Accept, Accept},
			7002: {Accept, Drop, Drop, Accept},
			7003: {Accept, Reject, Drop, Accept},
		}[port]
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("port %d: verdicts %v, want %v", port, got, want)
		}
		if port == 7003 {
			if len(u.pkts) != 1 || !bytes.Equal(u.pkts[0], rejected) {
				t.Errorf("reject: %d unreachables asked for (want 1, quoting the rejected datagram)", len(u.pkts))
			}
		} else if len(u.pkts) != 0 {
			t.Errorf("port %d: an unreachable was sent for a %v", port, want[1])
		}
	}
	if len(u.calls) != 0 {
		t.Errorf("TCP resets asked for UDP flows: %v", u.calls)
	}
	actions := map[int]string{}
	for _, a := range rec.alerts() {
		actions[a.Alert.SignatureID] = a.Alert.Action
	}
	want := map[int]string{9300001: "allowed", 9300002: "blocked", 9300003: "blocked"}
	if fmt.Sprint(actions) != fmt.Sprint(want) {
		t.Fatalf("alert actions %v, want %v (one alert per flow)", actions, want)
	}
	if n := len(rec.alerts()); n != 3 {
		t.Fatalf("%d alerts, want 3", n)
	}
}

// TestTCPDropFlow: a drop rule on an HTTP URI drops the request and every
// later packet of the connection, both ways, without resets; reject resets
// both ends with the sequence numbers each expects.
func TestTCPDropFlow(t *testing.T) {
	for _, action := range []string{"drop", "reject"} {
		tr := testpcap.NewTrace(t0)
		c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:80").Handshake()
		c.Client([]byte("GET /evil HTTP/1.1\r\nHost: a\r\n\r\n"), 0)
		c.Server([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), 0)
		c.Client([]byte("GET /fine HTTP/1.1\r\nHost: a\r\n\r\n"), 0)
		var u unreach
		var rec recorder
		e := New(Config{Sink: &rec, Reset: &u}, ruleBundle(t, action+` http any any -> any any (msg:"evil uri"; http.uri; content:"/evil"; sid:9300010; rev:1;)`+"\n"))
		var got []Verdict
		for _, p := range tr.Sorted() {
			got = append(got, e.Process(p.TS, p.Data))
		}
		first := Drop
		if action == "reject" {
			first = Reject
		}
		want := []Verdict{Accept, Accept, Accept, first, Drop, Drop}
		if fmt.Sprint(got[:len(want)]) != fmt.Sprint(want) {
			t.Errorf("%s: verdicts %v, want %v then drops", action, got, want)
		}
		for i, v := range got[len(want):] {
			if v != Drop {
				t.Errorf("%s: packet %d after the block: %v, want drop", action, len(want)+i, v)
			}
		}
		wantResets := 0
		if action == "reject" {
			wantResets = 1
		}
		if len(u.calls) != wantResets || len(u.pkts) != 0 {
			t.Errorf("%s: %d reset calls and %d unreachables, want %d and 0", action, len(u.calls), len(u.pkts), wantResets)
		}
		if wantResets == 1 {
			cl := u.calls[0]
			if cl.client != netip.MustParseAddrPort("198.18.1.2:40000") || cl.server != netip.MustParseAddrPort("198.18.2.2:80") {
				t.Errorf("reset of %v <-> %v", cl.client, cl.server)
			}
		}
		al := rec.alerts()
		if len(al) != 1 || al[0].Alert.Action != "blocked" || al[0].HTTP == nil || al[0].HTTP.URL != "/evil" {
			t.Errorf("%s: want one blocked alert naming /evil, got %+v", action, al)
		}
	}
}

// TestStarsOverride: Config.Stars replaces the rating a rule's classtype
// gives, per sid; other sids keep theirs.
func TestStarsOverride(t *testing.T) {
	const text = `alert udp any any -> any 7001 (msg:"a"; content:"X"; classtype:trojan-activity; sid:9300021; rev:1;)
alert udp any any -> any 7001 (msg:"b"; content:"X"; classtype:misc-activity; sid:9300022; rev:1;)
`
	for _, c := range []struct {
		stars map[int]int
		want  string
	}{
		{nil, "map[9300021:3 9300022:1]"},
		{map[int]int{9300021: 1, 9300022: 2}, "map[9300021:1 9300022:2]"},
	} {
		var rec recorder
		e := New(Config{Sink: &rec, Stars: c.stars}, ruleBundle(t, text))
		tr := testpcap.NewTrace(t0)
		tr.UDP("198.18.1.2:5000", "198.18.2.2:7001", []byte("X"))
		for _, p := range tr.Sorted() {
			e.Process(p.TS, p.Data)
		}
		got := map[int]int{}
		for _, a := range rec.alerts() {
			got[a.Alert.SignatureID] = int(a.Stars)
		}
		if fmt.Sprint(got) != c.want {
			t.Errorf("overrides %v: stars %v, want %v", c.stars, got, c.want)
		}
	}
}
