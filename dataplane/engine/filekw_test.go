package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/google/gopacket/layers"
	"github.com/openutm/utm/dataplane/internal/testpcap"
	"github.com/openutm/utm/signatures/rules"
)

// TestFileKeywords: the file keywords see the files the engine extracts
// (an HTTP download, a mail attachment), and the packet keywords id,
// icmp_id and stream_size their packet facts; near misses stay quiet.
func TestFileKeywords(t *testing.T) {
	body := []byte("MZ\x90\x00 this is not really a program, but its first bytes say so")
	sum := sha256.Sum256(body)
	text := fmt.Sprintf(`alert http any any -> any any (msg:"exe by ext"; fileext:"exe"; sid:1;)
alert http any any -> any any (msg:"dll by ext"; fileext:"dll"; sid:2;)
alert http any any -> any any (msg:"by hash"; filesha256:%s; sid:3;)
alert http any any -> any any (msg:"pe magic"; filemagic:"MS-DOS"; sid:4;)
alert http any any -> any any (msg:"small"; filesize:<100; sid:5;)
alert smtp any any -> any any (msg:"mail attachment name"; filename:"invoice.com"; sid:6;)
alert icmp any any -> any any (msg:"echo id"; icmp_id:4242; sid:7;)
alert icmp any any -> any any (msg:"other echo id"; icmp_id:1; sid:8;)
alert tcp any any -> any any (msg:"big client stream"; stream_size:client,>,1000; sid:9;)
`, hex.EncodeToString(sum[:]))
	set, errs := rules.Parse(strings.NewReader(text), "filekw.rules", nil)
	if len(errs) != 0 {
		t.Fatalf("rules rejected: %+v", errs)
	}
	b := *defaultBundle(t)
	b.Rules = set

	tr := testpcap.NewTrace(t0)
	c := tr.NewTCP("198.18.1.2:40000", "198.18.2.2:80").Handshake()
	c.Client([]byte("GET /dl/setup.exe HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"), 0)
	c.Server([]byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(body))), 0)
	c.Server(body, 0)
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 4242, Seq: 1}
	tr.Raw(testpcap.IP(mustAddr("198.18.1.2"), mustAddr("198.18.2.2"), layers.IPProtocolICMPv4, icmp, []byte("ping")))
	big := tr.NewTCP("198.18.1.2:40001", "198.18.2.2:9999").Handshake()
	big.Client(make([]byte, 1500), 500)

	var rec recorder
	e := New(Config{Sink: &rec}, &b)
	verdicts(e, append(tr.Sorted(), smtpSession(mimeMessage("invoice.com", []byte("hello"))).Sorted()...))
	got := map[int]bool{}
	for _, a := range rec.alerts() {
		got[a.Alert.SignatureID] = true
	}
	for sid, want := range map[int]bool{1: true, 2: false, 3: true, 4: true, 5: true, 6: true, 7: true, 8: false, 9: true} {
		if got[sid] != want {
			t.Errorf("sid %d fired %v, want %v (all: %v)", sid, got[sid], want, got)
		}
	}
}
