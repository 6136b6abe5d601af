//go:build linux

package nfq

import (
	"bytes"
	"errors"

	"golang.org/x/sys/unix"
)

// cpuPressure follows the kernel's CPU pressure (PSI, /proc/pressure/cpu,
// the "some" line): the share of time in which at least one runnable task
// waited for a CPU. The reader spins only while that share is low. A spin
// pays when the CPU it burns would have been idle; where tasks already
// queue for CPUs it takes the CPU from them, and on a box they include
// the engine's own helpers (the hash helper, telemetry) and, in the lab,
// the clients and servers that feed the queue. hack/bench/lab on the 2-vCPU
// VM, 3 s averages: downloads 40-53%, short flows 72-77% with or without
// the spin; the spin gains 10-30% on downloads and costs short flows
// 10-15%. With this gate, short flows +4-5% against the same build
// without it (two runs, 3 and 5 rounds), downloads unchanged within the
// run's noise.
//
// It reads the file at most once per cpuPressureEvery, and only when the
// reader is about to spin, smooths the readings (a quarter of each new
// one) and says "short" above cpuShortAbove until the share falls below
// cpuShortBelow (hysteresis: one noisy reading does not flip it). Without
// PSI (a kernel built without it, or booted with psi=0) the CPU is never
// short and the spin credit alone decides.
type cpuPressure struct {
	path  string
	none  bool  // no PSI here: never short
	at    int64 // monotime of the last reading; 0: none yet
	total int64 // the "some" total (us) at that reading
	share int64 // smoothed share, per mille
	short bool
	buf   [256]byte
}

const (
	cpuPressureEvery = 10e6 // ns between readings
	cpuShortAbove    = 650  // per mille
	cpuShortBelow    = 550
	// cpuPressureFresh: a reading further apart than this from the last
	// one replaces the smoothed share instead of blending into it.
	cpuPressureFresh = 100e6
)

// isShort reports whether the CPU is short at now (monotime), reading
// the pressure file if the last reading is older than cpuPressureEvery.
func (p *cpuPressure) isShort(now int64) bool {
	if p.none || (p.at != 0 && now-p.at < cpuPressureEvery) {
		return p.short
	}
	total, err := p.read()
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) {
			p.none, p.short = true, false // no PSI: never again
		}
		p.at = now // anything else: try again next period, meanwhile as before
		return p.short
	}
	if p.at != 0 && now > p.at {
		x := max(total-p.total, 0) * 1e6 / (now - p.at) // us*1e6/ns: per mille
		if now-p.at > cpuPressureFresh {
			p.share = x
		} else {
			p.share += (x - p.share) / 4
		}
		switch {
		case p.share > cpuShortAbove:
			p.short = true
		case p.share < cpuShortBelow:
			p.short = false
		}
	}
	p.at, p.total = now, total
	return p.short
}

// read returns the "some" line's total. It opens the file each time (three
// syscalls every cpuPressureEvery at most): no descriptor to share with
// Close.
func (p *cpuPressure) read() (int64, error) {
	fd, err := unix.Open(p.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	n, err := unix.Read(fd, p.buf[:])
	unix.Close(fd)
	if err != nil {
		return 0, err
	}
	v, ok := someTotal(p.buf[:max(n, 0)])
	if !ok {
		return 0, errUnreadablePSI
	}
	return v, nil
}

var errUnreadablePSI = errors.New("nfq: unreadable CPU pressure file")

// someTotal parses "some avg10=... total=N" out of a PSI file.
func someTotal(b []byte) (int64, bool) {
	if !bytes.HasPrefix(b, []byte("some ")) {
		return 0, false
	}
	if nl := bytes.IndexByte(b, '\n'); nl >= 0 {
		b = b[:nl]
	}
	i := bytes.Index(b, []byte("total="))
	if i < 0 {
		return 0, false
	}
	var v int64
	digits := 0
	for _, c := range b[i+len("total="):] {
		if c < '0' || c > '9' {
			break
		}
		if v > (1<<62)/10 {
			return 0, false
		}
		v = v*10 + int64(c-'0')
		digits++
	}
	return v, digits > 0
}
