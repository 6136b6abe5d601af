package engine

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/openutm/utm/dataplane/internal/testpcap"
	"github.com/openutm/utm/signatures/bundle"
	"github.com/openutm/utm/signatures/rules"
)

func ruleBundle(t testing.TB, text string) *bundle.Bundle {
	t.Helper()
	set, errs := rules.Parse(strings.NewReader(text), "test.rules", rules.DefaultVars())
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	return &bundle.Bundle{Rules: set}
}

const loginRules = `alert tcp any any -> any 7000 (msg:"login seen"; flow:to_server; content:"LOGIN"; flowbits:set,logged_in; flowbits:noalert; sid:9100001; rev:1;)
drop tcp any any -> any 7000 (msg:"command after login"; flow:to_server; content:"RUN"; flowbits:isset,logged_in; sid:9100002; rev:1;)
`

// dataVerdicts returns the verdicts of the client's data packets, in order.
func dataVerdicts(e *Engine, pkts []testpcap.Packet) []Verdict {
	var out []Verdict
	for _, p := range pkts {
		v := e.Process(p.TS, p.Data)
		if len(p.Data) > 40 && p.Data[12] == 198 && p.Data[14] == 1 { // from the client, with data
			out = append(out, v)
		}
	}
	return out
}

// TestFlowbitsAcrossPackets: in one TCP flow, the drop rule fires only once
// the login rule set its bit on an earlier packet; the login rule (noalert)
// makes no event; another flow's command is not affected.
func TestFlowbitsAcrossPackets(t *testing.T) {
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:7000").Handshake()
	c.Client([]byte("RUN early"), 0)
	c.Client([]byte("LOGIN bob"), 0)
	c.Client([]byte("RUN rm"), 0)
	other := tr.NewTCP("198.18.1.2:40001", "198.18.2.2:7000").Handshake()
	other.Client([]byte("RUN rm"), 0)
	var rec recorder
	e := New(Config{Sink: &rec}, ruleBundle(t, loginRules))
	got := dataVerdicts(e, tr.Sorted())
	want := []Verdict{Accept, Accept, Drop, Accept}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("data verdicts %v, want %v", got, want)
	}
	al := rec.alerts()
	if len(al) != 1 || al[0].Alert.SignatureID != 9100002 || al[0].Alert.Action != "blocked" || al[0].SrcPort != 40000 {
		t.Fatalf("want one blocked alert of sid 9100002 on port 40000 (none for the noalert login rule), got %+v", al)
	}
	if len(rec.ev) != 1 {
		t.Fatalf("want only that event in EVE, got %d events", len(rec.ev))
	}
}

// TestFlowbitsReloadResets: a flow's bits from before a rule reload are
// forgotten (the new Set may number names differently).
func TestFlowbitsReloadResets(t *testing.T) {
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:7000").Handshake()
	c.Client([]byte("LOGIN bob"), 0)
	c.Client([]byte("RUN rm"), 0)
	c.Client([]byte("LOGIN bob"), 0)
	c.Client([]byte("RUN rm"), 0)
	pkts := tr.Sorted()
	e := New(Config{}, ruleBundle(t, loginRules))
	var got []Verdict
	for i, p := range pkts {
		if i == 4 { // after the first LOGIN: reload
			e.SetBundle(ruleBundle(t, loginRules))
		}
		v := e.Process(p.TS, p.Data)
		if len(p.Data) > 40 && p.Data[14] == 1 {
			got = append(got, v)
		}
	}
	if want := []Verdict{Accept, Accept, Accept, Drop}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("data verdicts %v, want %v (the bit set before the reload does not count)", got, want)
	}
}

// TestThresholdInEngine: threshold limits the alerts of a rule across flows
// of one source, detection_filter holds its drop back until the (N+1)th
// match; both on packet time.
func TestThresholdInEngine(t *testing.T) {
	b := ruleBundle(t, `alert udp any any -> any 9999 (msg:"probe"; content:"probe"; threshold: type limit, track by_src, count 2, seconds 60; sid:9100010; rev:1;)
drop udp any any -> any 9999 (msg:"flood"; content:"flood"; detection_filter: track by_src, count 2, seconds 60; sid:9100011; rev:1;)
`)
	var rec recorder
	e := New(Config{Sink: &rec}, b)
	send := func(at time.Time, port int, payload string) Verdict {
		tr := testpcap.NewTrace(at)
		tr.UDP(fmt.Sprintf("198.18.1.2:%d", port), "198.18.2.2:9999", []byte(payload))
		p := tr.Sorted()[0]
		return e.Process(p.TS, p.Data)
	}
	for i := 0; i < 5; i++ { // five flows of one source
		send(t0.Add(time.Duration(i)*time.Second), 5000+i, "probe")
	}
	if n := len(rec.alerts()); n != 2 {
		t.Fatalf("threshold limit 2: %d alerts from 5 probes, want 2", n)
	}
	send(t0.Add(61*time.Second), 5100, "probe") // a new window
	if n := len(rec.alerts()); n != 3 {
		t.Fatalf("after the window: %d alerts, want 3", n)
	}
	var vs []Verdict
	for i := 0; i < 4; i++ {
		vs = append(vs, send(t0.Add(time.Duration(i)*time.Second), 6000+i, "flood"))
	}
	if want := []Verdict{Accept, Accept, Drop, Drop}; fmt.Sprint(vs) != fmt.Sprint(want) {
		t.Fatalf("detection_filter count 2: verdicts %v, want %v", vs, want)
	}
	if n := len(rec.alerts()); n != 5 {
		t.Fatalf("%d alerts, want 5 (3 probes, 2 floods)", n)
	}
	if c := e.Counters(); c["threshold_entries"] != 2 || c["threshold_evicted"] != 0 {
		t.Fatalf("counters threshold_entries=%d threshold_evicted=%d, want 2 and 0", c["threshold_entries"], c["threshold_evicted"])
	}
}

// TestFlowbitsAllocs: packets that set, test and threshold rules on a known
// flow do not allocate.
func TestFlowbitsAllocs(t *testing.T) {
	b := ruleBundle(t, `alert tcp any any -> any 7000 (content:"PING"; flowbits:toggle,p; noalert; sid:9100020;)
alert tcp any any -> any 7000 (content:"PONG"; flowbits:isset,p; threshold: type limit, track by_src, count 1, seconds 60; sid:9100021;)
alert tcp any any -> any 7000 (content:"PONG"; detection_filter: track by_dst, count 3, seconds 60; sid:9100022;)
`)
	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:7000").Handshake()
	c.Client(bytes.Repeat([]byte("PING PONG "), 20000), 100)
	pkts := tr.Sorted()
	var rec recorder
	e := New(Config{Sink: &rec}, b)
	for _, p := range pkts[:20] {
		e.Process(p.TS, p.Data)
	}
	i := 20
	n := testing.AllocsPerRun(len(pkts)-40, func() {
		e.Process(pkts[i].TS, pkts[i].Data)
		i++
	})
	if n != 0 {
		t.Fatalf("Process allocates %v times per packet with flowbits and thresholds; want 0", n)
	}
	if len(rec.alerts()) != 2 {
		t.Fatalf("%d alerts, want 2 (9100021 once by threshold, 9100022 once per flow)", len(rec.alerts()))
	}
}
