//go:build linux

package inline

// IPS actions and rule reload through a real utmd -q in a throwaway nslab
// (newLab, startUTMD from utmd_lab_test.go): what an office would see when
// a rule says drop or reject, and that SIGHUP swaps rules in without
// losing or fail-opening a packet.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openutm/utm/dataplane/internal/nslab"
)

// ipsAlert is the part of an EVE alert these tests check.
type ipsAlert struct {
	EventType string `json:"event_type"`
	Alert     struct {
		Action      string `json:"action"`
		SignatureID int    `json:"signature_id"`
	} `json:"alert"`
}

// alertActions returns sid -> alert.action of eve.json's alerts.
func (l *lab) alertActions(t *testing.T) map[int]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(l.dir, "eve.json"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]string{}
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var e ipsAlert
		if json.Unmarshal(line, &e) == nil && e.EventType == "alert" {
			out[e.Alert.SignatureID] = e.Alert.Action
		}
	}
	return out
}

// waitActions polls eve.json until every sid in want has an alert.
func (l *lab) waitActions(t *testing.T, want map[int]string) map[int]string {
	t.Helper()
	var got map[int]string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		got = l.alertActions(t)
		all := true
		for sid := range want {
			_, ok := got[sid]
			all = all && ok
		}
		if all {
			break
		}
	}
	return got
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

const ipsRules = `drop http any any -> any any (msg:"IPS lab drop"; http.uri; content:"/drop-me"; sid:9500001; rev:1;)
reject http any any -> any any (msg:"IPS lab reject"; http.uri; content:"/reject-me"; sid:9500002; rev:1;)
reject udp any any -> any 9053 (msg:"IPS lab reject udp"; content:"REJECTME"; sid:9500003; rev:1;)
`

// TestUTMDDropAndReject: a drop rule on an HTTP URI leaves the client
// without an answer (its request times out); a reject rule resets the
// client at once (ECONNRESET in under a second) and the server too; a
// reject rule on UDP makes the client's connected socket fail with
// ECONNREFUSED (ICMP port unreachable). Each is one "blocked" EVE alert;
// clean traffic passes.
func TestUTMDDropAndReject(t *testing.T) {
	l := newLab(t)
	rules := filepath.Join(l.dir, "ips.rules")
	if err := os.WriteFile(rules, []byte(ipsRules), 0o600); err != nil {
		t.Fatal(err)
	}
	l.startUTMD(t, nil, "-q", "0:1", "-l", l.dir, "-S", rules)

	// Control: a clean download passes.
	if b, err := l.get("/big"); err != nil || sha256.Sum256(b) != l.bigSum {
		t.Fatalf("clean download: %d bytes, %v", len(b), err)
	}

	// drop: no answer at all.
	c := l.client()
	c.Timeout = 3 * time.Second
	start := time.Now()
	resp, err := c.Get("http://" + nslab.ServerAddr.String() + "/drop-me")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("GET /drop-me got %s through a drop rule", resp.Status)
	}
	if !isTimeoutErr(err) {
		t.Fatalf("GET /drop-me: %v after %v; want a timeout (dropped silently, not reset)", err, time.Since(start))
	}

	// reject on TCP: both ends reset.
	server := netip.AddrPortFrom(nslab.ServerAddr, 8080)
	var ln net.Listener
	if err := nslab.Do(l.Server, func() (err error) { ln, err = net.Listen("tcp4", server.String()); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if sc, err := ln.Accept(); err == nil {
			accepted <- sc
		}
	}()
	var cc net.Conn
	if err := nslab.Do(l.Client, func() (err error) { cc, err = net.DialTimeout("tcp4", server.String(), 3*time.Second); return err }); err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	var sc net.Conn
	select {
	case sc = <-accepted:
	case <-time.After(3 * time.Second):
		t.Fatal("the server did not accept the connection")
	}
	defer sc.Close()
	buf := make([]byte, 512)
	start = time.Now()
	fmt.Fprintf(cc, "GET /reject-me HTTP/1.1\r\nHost: lab\r\n\r\n")
	cc.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = cc.Read(buf)
	if took := time.Since(start); !errors.Is(err, syscall.ECONNRESET) || took > time.Second {
		t.Fatalf("client after a rejected request: %v after %v; want ECONNRESET within 1 s", err, took)
	}
	sc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := sc.Read(buf); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("server after a rejected request: read %q, %v; want ECONNRESET (and never the request)", buf[:n], err)
	}

	// reject on UDP: ICMP port unreachable.
	usrv := netip.AddrPortFrom(nslab.ServerAddr, 9053)
	var us *net.UDPConn
	if err := nslab.Do(l.Server, func() (err error) { us, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(usrv)); return err }); err != nil {
		t.Fatal(err)
	}
	defer us.Close()
	var uc net.Conn
	if err := nslab.Do(l.Client, func() (err error) { uc, err = net.Dial("udp4", usrv.String()); return err }); err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	uc.Write([]byte("hello"))
	us.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := us.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("control datagram: %q, %v; want it delivered", buf[:n], err)
	}
	uc.Write([]byte("REJECTME"))
	uc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := uc.Read(buf); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("client after a rejected datagram: %v; want ECONNREFUSED (ICMP port unreachable)", err)
	}
	us.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := us.Read(buf); err == nil {
		t.Fatalf("the server got the rejected datagram %q", buf[:n])
	}

	want := map[int]string{9500001: "blocked", 9500002: "blocked", 9500003: "blocked"}
	if got := l.waitActions(t, want); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("EVE alert actions %v, want %v", got, want)
	}
}

// TestUTMDReloadUnderTraffic: while a paced 2 MiB download and a stream of
// numbered UDP datagrams run through utmd, SIGHUP swaps in rule files three
// times: every datagram arrives, the download completes intact, nothing
// passes uninspected, and the drop rule the reload added blocks afterwards
// (not before: the control).
func TestUTMDReloadUnderTraffic(t *testing.T) {
	l := newLab(t)
	rules := filepath.Join(l.dir, "reload.rules")
	v1 := `alert udp any any -> any 9999 (msg:"never"; content:"NEVERSEEN"; sid:9500010; rev:1;)` + "\n"
	v2 := v1 + `drop http any any -> any any (msg:"reload drop"; http.uri; content:"/blocked-after-reload"; sid:9500011; rev:1;)` + "\n"
	if err := os.WriteFile(rules, []byte(v1), 0o600); err != nil {
		t.Fatal(err)
	}
	p := l.startUTMD(t, nil, "-q", "0:1", "-l", l.dir, "-S", rules, "--metrics", "127.0.0.1:0")

	// Control: before the reload the path is not blocked (404 from the
	// server, but an answer).
	if _, err := l.get("/blocked-after-reload"); err != nil {
		t.Fatalf("before the reload: %v; want an answer", err)
	}

	var wg sync.WaitGroup
	var dlErr error
	var dl []byte
	wg.Add(1)
	go func() {
		defer wg.Done()
		resp, err := l.client().Get("http://" + nslab.ServerAddr.String() + "/slow")
		if err != nil {
			dlErr = err
			return
		}
		defer resp.Body.Close()
		dl, dlErr = io.ReadAll(resp.Body)
	}()

	usrv := netip.AddrPortFrom(nslab.ServerAddr, 9054)
	var us *net.UDPConn
	if err := nslab.Do(l.Server, func() (err error) { us, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(usrv)); return err }); err != nil {
		t.Fatal(err)
	}
	defer us.Close()
	us.SetReadBuffer(4 << 20)
	var uc net.Conn
	if err := nslab.Do(l.Client, func() (err error) { uc, err = net.Dial("udp4", usrv.String()); return err }); err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	seen := make(map[uint32]bool)
	var seenMu sync.Mutex
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		b := make([]byte, 64)
		for {
			us.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := us.Read(b)
			if err != nil {
				return
			}
			if n >= 4 {
				seenMu.Lock()
				seen[binary.BigEndian.Uint32(b)] = true
				seenMu.Unlock()
			}
		}
	}()

	const sendFor = 2500 * time.Millisecond
	sent := uint32(0)
	reloads := 0
	begin := time.Now()
	msg := make([]byte, 32)
	for time.Since(begin) < sendFor {
		binary.BigEndian.PutUint32(msg, sent)
		if _, err := uc.Write(msg); err != nil {
			t.Fatalf("datagram %d: %v", sent, err)
		}
		sent++
		// Reload at 0.5 s, 1.2 s and 1.9 s, with v2 from the first on.
		if reloads < 3 && time.Since(begin) > time.Duration(500+700*reloads)*time.Millisecond {
			if reloads == 0 {
				os.WriteFile(rules, []byte(v2), 0o600)
			}
			p.cmd.Process.Signal(syscall.SIGHUP)
			reloads++
		}
		time.Sleep(time.Millisecond)
	}
	p.waitLog(t, "rules reloaded: loaded=2 rejected=0", 3)
	wg.Wait()
	<-recvDone
	if dlErr != nil || len(dl) != len(l.big) || sha256.Sum256(dl) != l.bigSum {
		t.Fatalf("the download across the reloads: %d bytes, %v; want %d intact bytes", len(dl), dlErr, len(l.big))
	}
	seenMu.Lock()
	got := len(seen)
	seenMu.Unlock()
	t.Logf("%d datagrams sent across %d reloads, %d received", sent, reloads, got)
	if got != int(sent) {
		t.Fatalf("%d of %d datagrams arrived across the reloads; want every one", got, sent)
	}
	body := l.metrics(t, p)
	for _, s := range []string{
		`utm_bypassed_packets_total{queue="all",reason="uninspected"}`,
		`utm_bypassed_packets_total{queue="0",reason="socket_full"}`,
		`utm_bypassed_packets_total{queue="1",reason="socket_full"}`,
	} {
		if v := metricValue(t, body, s); v != 0 {
			t.Errorf("%s = %v; want 0: packets passed uninspected during the reloads", s, v)
		}
	}

	c := l.client()
	c.Timeout = 3 * time.Second
	if resp, err := c.Get("http://" + nslab.ServerAddr.String() + "/blocked-after-reload"); err == nil {
		resp.Body.Close()
		t.Fatalf("after the reload the drop rule did not block: %s", resp.Status)
	}
	want := map[int]string{9500011: "blocked"}
	if got := l.waitActions(t, want); got[9500011] != "blocked" {
		t.Fatalf("EVE alert actions %v, want sid 9500011 blocked", got)
	}
}
