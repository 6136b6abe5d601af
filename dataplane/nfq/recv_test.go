//go:build linux

package nfq

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// socketPair stands in for the kernel: the Queue reads and sends on one
// end (a RawConn with the runtime poller, like the netlink socket's), the
// test writes queued-packet messages to and reads verdicts from the other.
func socketPair(t testing.TB) (rc syscall.RawConn, local *os.File, peer int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	tv := unix.Timeval{Sec: 3}
	unix.SetsockoptTimeval(fds[1], unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	local = os.NewFile(uintptr(fds[0]), "nfq-test")
	rc, err = local.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { local.Close(); unix.Close(fds[1]) })
	return rc, local, fds[1]
}

// packetMessage builds an NFQNL_MSG_PACKET message as the kernel does.
func packetMessage(id uint32, payload []byte, mark uint32, skbInfo uint32) []byte {
	attr := func(b []byte, typ uint16, v []byte) []byte {
		h := make([]byte, 4)
		binary.NativeEndian.PutUint16(h[0:2], uint16(4+len(v)))
		binary.NativeEndian.PutUint16(h[2:4], typ)
		b = append(append(b, h...), v...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	b := make([]byte, nlmsgHdrLen, 256)
	b = append(b, 2, 0, 0, queueNum) // AF_INET, v0, queue (be16)
	hdr := binary.BigEndian.AppendUint32(nil, id)
	hdr = append(hdr, 0x08, 0x00, 2) // ETH_P_IP, NF_INET_FORWARD
	b = attr(b, attrPacketHdr, hdr)
	if mark != 0 {
		b = attr(b, attrMark, binary.BigEndian.AppendUint32(nil, mark))
	}
	b = attr(b, attrSkbInfo, binary.BigEndian.AppendUint32(nil, skbInfo))
	b = attr(b, attrPayload, payload)
	binary.NativeEndian.PutUint32(b[0:4], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:6], msgPacket)
	return b
}

// verdict is one verdict message as the kernel reads it.
type verdict struct {
	typ           uint16
	id, verdict   uint32
	mark          uint32
	hasMark       bool
	queue, family uint16
}

func parseVerdicts(t testing.TB, b []byte) []verdict {
	t.Helper()
	var vs []verdict
	for len(b) > 0 {
		typ, body, rest, whole, ok := nextMessage(b)
		if !ok || !whole || len(body) < nfgenHdrLen {
			t.Fatalf("malformed verdict message % x", b)
		}
		if binary.NativeEndian.Uint16(b[6:8]) != nlmRequest {
			t.Errorf("verdict flags %#x, want NLM_F_REQUEST only", binary.NativeEndian.Uint16(b[6:8]))
		}
		v := verdict{typ: typ, family: uint16(body[0]), queue: binary.BigEndian.Uint16(body[2:4])}
		a := body[nfgenHdrLen:]
		for len(a) >= 4 {
			l := int(binary.NativeEndian.Uint16(a[0:2]))
			switch binary.NativeEndian.Uint16(a[2:4]) {
			case attrVerdictHdr:
				v.verdict, v.id = binary.BigEndian.Uint32(a[4:8]), binary.BigEndian.Uint32(a[8:12])
			case attrMark:
				v.mark, v.hasMark = binary.BigEndian.Uint32(a[4:8]), true
			}
			a = a[(l+3)&^3:]
		}
		vs = append(vs, v)
		b = rest
	}
	return vs
}

// readVerdicts reads verdict datagrams from the peer until it has n.
func readVerdicts(t testing.TB, peer, n int) []verdict {
	t.Helper()
	var vs []verdict
	buf := make([]byte, 4096)
	for len(vs) < n {
		k, _, err := unix.Recvfrom(peer, buf, 0)
		if err != nil {
			t.Fatalf("waiting for verdict %d of %d (have %+v): %v", len(vs)+1, n, vs, err)
		}
		vs = append(vs, parseVerdicts(t, buf[:k])...)
	}
	return vs
}

func send(t testing.TB, peer int, b []byte) {
	t.Helper()
	if err := unix.Sendto(peer, b, 0, nil); err != nil {
		t.Fatal(err)
	}
}

// TestLoop runs the receive loop against a socket pair and checks every
// verdict it sends: a queued burst is accepted by batch verdicts that stop
// before a drop, a lone packet is answered at once, Bypass repeats the
// packet with the mark unless it came back marked (then it is a plain,
// batched accept), a message larger than
// the buffer is accepted uninspected, a kernel error counts as a failed
// verdict and a hole in the ids is counted.
func TestLoop(t *testing.T) {
	rc, local, peer := socketPair(t)
	q := newQueue(Config{Queue: queueNum, Batch: 64, KernelBypass: true}, func(pkt []byte) Verdict {
		switch pkt[0] {
		case 'd':
			return Drop
		case 'b':
			return Bypass
		}
		return Accept
	}, rc)
	for id := uint32(1); id <= 10; id++ {
		p := []byte("accept")
		if id == 5 {
			p = []byte("drop")
		}
		send(t, peer, packetMessage(id, p, 0, skbGSO))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.loop(ctx); close(done) }()
	defer func() {
		cancel()
		local.Close() // unblocks the loop's read
		<-done
	}()

	want := func(got []verdict, want ...verdict) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("verdicts %+v, want %+v", got, want)
		}
		for i := range want {
			want[i].queue = queueNum
			if got[i] != want[i] {
				t.Errorf("verdict %d: %+v, want %+v", i, got[i], want[i])
			}
		}
	}
	want(readVerdicts(t, peer, 3),
		verdict{typ: msgVerdictBatch, id: 4, verdict: nfAccept},
		verdict{typ: msgVerdict, id: 5, verdict: nfDrop},
		verdict{typ: msgVerdictBatch, id: 10, verdict: nfAccept})

	send(t, peer, packetMessage(11, []byte("accept"), 0, 0))
	want(readVerdicts(t, peer, 1), verdict{typ: msgVerdictBatch, id: 11, verdict: nfAccept})

	send(t, peer, packetMessage(12, []byte("bypass"), 0, 0))
	want(readVerdicts(t, peer, 1), verdict{typ: msgVerdict, id: 12, verdict: nfRepeat, mark: DefaultBypassMark, hasMark: true})
	send(t, peer, packetMessage(13, []byte("bypass"), DefaultBypassMark|1, 0))
	want(readVerdicts(t, peer, 1), verdict{typ: msgVerdictBatch, id: 13, verdict: nfAccept})

	big := packetMessage(14, bytes.Repeat([]byte("x"), recvBufLen+1000), 0, 0)
	send(t, peer, big)
	want(readVerdicts(t, peer, 1), verdict{typ: msgVerdict, id: 14, verdict: nfAccept})

	nlErr := make([]byte, nlmsgHdrLen+4+nlmsgHdrLen)
	binary.NativeEndian.PutUint32(nlErr[0:4], uint32(len(nlErr)))
	binary.NativeEndian.PutUint16(nlErr[4:6], nlmsgError)
	enoent := -int32(unix.ENOENT)
	binary.NativeEndian.PutUint32(nlErr[16:20], uint32(enoent))
	send(t, peer, append(nlErr, packetMessage(20, []byte("accept"), 0, 0)...)) // two messages, one datagram
	want(readVerdicts(t, peer, 1), verdict{typ: msgVerdictBatch, id: 20, verdict: nfAccept})

	cancel()
	local.Close()
	<-done
	c := q.Counters()
	for k, v := range map[string]uint64{
		"packets": 14, "accepted": 14, "dropped": 1, "bypassed": 1, "truncated": 1, "verdict_errors": 1,
		"id_gaps": 5, "gso": 10, "malformed": 0, "verdict_batches": 5, "read_errors": 0,
	} {
		if c[k] != v {
			t.Errorf("counter %s = %d, want %d (all: %v)", k, c[k], v, c)
		}
	}
}

// TestBypassWithoutKernelRules: without steering rules that know the
// bypass mark (utmd -q: the caller steers), a Bypass verdict is a plain
// accept, batched like any: a flow past its inspection depth must not
// cost a sendto per packet.
func TestBypassWithoutKernelRules(t *testing.T) {
	rc, local, peer := socketPair(t)
	q := newQueue(Config{Queue: queueNum, Batch: 64}, func([]byte) Verdict { return Bypass }, rc)
	for id := uint32(1); id <= 10; id++ {
		send(t, peer, packetMessage(id, []byte("past depth"), 0, 0))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.loop(ctx); close(done) }()
	defer func() {
		cancel()
		local.Close()
		<-done
	}()
	got := readVerdicts(t, peer, 1)
	if want := (verdict{typ: msgVerdictBatch, queue: queueNum, id: 10, verdict: nfAccept}); len(got) != 1 || got[0] != want {
		t.Fatalf("verdicts %+v, want one batch accept %+v", got, want)
	}
	if c := q.Counters(); c["bypassed"] != 0 || c["accepted"] != 10 {
		t.Errorf("bypassed %d, accepted %d; want 0 and 10 (no kernel bypass without its rules)", c["bypassed"], c["accepted"])
	}
}

// TestMalformed: messages the walker cannot use are counted, not handed
// to the handler, and do not stop the loop.
func TestMalformed(t *testing.T) {
	rc, _, _ := socketPair(t)
	var handled int
	q := newQueue(Config{Queue: queueNum}, func([]byte) Verdict { handled++; return Accept }, rc)
	good := packetMessage(1, []byte("x"), 0, 0)
	noHdr := packetMessage(2, []byte("x"), 0, 0)
	binary.NativeEndian.PutUint16(noHdr[nlmsgHdrLen+nfgenHdrLen+2:], 99) // the packet header's type
	short := append([]byte(nil), good...)
	binary.NativeEndian.PutUint32(short[0:4], 8) // shorter than a header
	for _, b := range [][]byte{noHdr, short, good[:10]} {
		q.datagram(b, false)
	}
	if c := q.Counters(); c["malformed"] != 3 || handled != 0 || c["packets"] != 0 {
		t.Errorf("malformed %d, handled %d, packets %d; want 3, 0, 0", c["malformed"], handled, c["packets"])
	}
	q.datagram(good, false)
	if handled != 1 {
		t.Errorf("a good message after bad ones was not handled")
	}
}

// TestNoAllocs proves the receive path (walk, parse, handler, verdict
// built and sent on a real socket) allocates nothing per packet, for each
// kind of verdict.
func TestNoAllocs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		batch int
		v     Verdict
	}{{"accept", 1, Accept}, {"accept-batch", 64, Accept}, {"drop", 64, Drop}, {"bypass", 1, Bypass}} {
		t.Run(tc.name, func(t *testing.T) {
			rc, local, peer := socketPair(t)
			q := newQueue(Config{Queue: queueNum, Batch: tc.batch, KernelBypass: true}, func(pkt []byte) Verdict { return tc.v }, rc)
			stop := make(chan struct{})
			drained := make(chan struct{})
			go func() { // the kernel's side: take the verdicts, allocating nothing
				defer close(drained)
				var buf [512]byte
				for {
					select {
					case <-stop:
						return
					default:
					}
					syscall.Read(peer, buf[:])
				}
			}()
			msg := packetMessage(1, bytes.Repeat([]byte{0x45}, 1400), 0, skbGSO)
			var id uint32
			allocs := testing.AllocsPerRun(1000, func() {
				id++
				binary.BigEndian.PutUint32(msg[nlmsgHdrLen+nfgenHdrLen+4:], id)
				q.datagram(msg, false)
				if q.pendN > 0 {
					q.appendFlush()
					q.sendOut()
				}
			})
			close(stop)
			local.Write([]byte{0}) // wakes the drain's read
			<-drained
			if allocs != 0 {
				t.Errorf("%.1f allocations per packet, want 0", allocs)
			}
			if c := q.Counters(); c["verdict_errors"] != 0 || c["packets"] < 1000 {
				t.Errorf("counters %v: want every verdict sent", c)
			}
		})
	}
}

// BenchmarkDatagram is the per-packet cost of the receive path without the
// syscalls' kernel side: parse, a trivial handler, a batch verdict every 64.
func BenchmarkDatagram(b *testing.B) {
	rc, _, peer := socketPair(b)
	go func() {
		var buf [512]byte
		for {
			if _, err := syscall.Read(peer, buf[:]); err != nil && err != syscall.EAGAIN {
				return
			}
		}
	}()
	q := newQueue(Config{Queue: queueNum, Batch: 64}, func([]byte) Verdict { return Accept }, rc)
	msg := packetMessage(1, bytes.Repeat([]byte{0x45}, 1400), 0, 0)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		binary.BigEndian.PutUint32(msg[nlmsgHdrLen+nfgenHdrLen+4:], uint32(i+1))
		q.datagram(msg, false)
	}
}
