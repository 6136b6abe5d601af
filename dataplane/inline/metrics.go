//go:build linux

package inline

import (
	"bufio"
	"io"
	"strconv"
)

// metric is one family of the Prometheus text format.
type metric struct {
	name, typ, help string
	samples         []sample
}

type sample struct {
	queue, reason string // label values; "" omits the label
	v             float64
}

// Box-wide counters the daemon adds to the workers' (WriteMetrics' box
// argument): packets that passed uninspected and fail-open reports.
const (
	BoxUninspected    = "uninspected"
	BoxFailOpenAlerts = "fail_open_alerts"
	BoxWorkerFailures = "worker_failures"
)

// WriteMetrics writes the workers' counters in the Prometheus text
// exposition format (version 0.0.4), labelled by queue and, for drops and
// bypasses, by reason:
//
//	utm_packets_total{queue}                 packets the engine inspected
//	utm_bytes_total{queue}
//	utm_dropped_packets_total{queue,reason}  verdict (drop rule, blocked flow),
//	                                         reject, malformed
//	utm_bypassed_packets_total{queue,reason} flow (Bypass verdicts: depth, TLS,
//	                                         pass rule), socket_full (the kernel
//	                                         failed open: nfq id gaps), and
//	                                         {queue="all",reason="uninspected"}:
//	                                         steered packets no worker saw
//	utm_alerts_total{queue}
//	utm_flows_total{queue}
//	utm_worker_busy_seconds{queue}           time on the current packet (gauge)
//	utm_fail_open_alerts_total, utm_worker_failures_total
//	utm_matcher_errors_total{reason}         prefilter, pcre_limit, pcre_error
//	                                         (process-wide)
//
// box holds the daemon's own counters (BoxUninspected, BoxFailOpenAlerts,
// BoxWorkerFailures); missing ones are written as 0.
func (p *Pool) WriteMetrics(w io.Writer, box map[string]uint64) error {
	ms := []*metric{
		{name: "utm_packets_total", typ: "counter", help: "Packets the engine inspected."},
		{name: "utm_bytes_total", typ: "counter", help: "Bytes of the packets the engine inspected."},
		{name: "utm_dropped_packets_total", typ: "counter", help: "Packets dropped, by reason."},
		{name: "utm_bypassed_packets_total", typ: "counter", help: "Packets accepted without inspection, by reason."},
		{name: "utm_alerts_total", typ: "counter", help: "Alerts raised."},
		{name: "utm_flows_total", typ: "counter", help: "Flows tracked."},
		{name: "utm_worker_busy_seconds", typ: "gauge", help: "Time the worker has spent on its current packet (0 idle)."},
	}
	for _, wk := range p.workers {
		q := strconv.Itoa(int(wk.Queue))
		c := wk.eng.Counters()
		var gaps uint64
		if wk.q != nil {
			gaps = wk.q.Counters()["id_gaps"]
		}
		ms[0].samples = append(ms[0].samples, sample{queue: q, v: float64(c["packets"])})
		ms[1].samples = append(ms[1].samples, sample{queue: q, v: float64(c["bytes"])})
		var malformed uint64 // undecodable packets are dropped unless MalformedAccept
		if !p.cfg.Engine.MalformedAccept {
			malformed = min(c["dropped"], c["malformed"]+c["truncated"]+c["unsupported"])
		}
		ms[2].samples = append(ms[2].samples,
			sample{queue: q, reason: "verdict", v: float64(c["dropped"] - malformed)},
			sample{queue: q, reason: "malformed", v: float64(malformed)},
			sample{queue: q, reason: "reject", v: float64(c["rejected"])})
		ms[3].samples = append(ms[3].samples,
			sample{queue: q, reason: "flow", v: float64(c["bypassed"])},
			sample{queue: q, reason: "socket_full", v: float64(gaps)})
		ms[4].samples = append(ms[4].samples, sample{queue: q, v: float64(c["alerts"])})
		ms[5].samples = append(ms[5].samples, sample{queue: q, v: float64(c["flows"])})
		ms[6].samples = append(ms[6].samples, sample{queue: q, v: wk.BusyFor().Seconds()})
	}
	ms[3].samples = append(ms[3].samples, sample{queue: "all", reason: "uninspected", v: float64(box[BoxUninspected])})
	ms = append(ms,
		&metric{name: "utm_fail_open_alerts_total", typ: "counter", help: "Alerts raised because packets passed uninspected (sid 2230003).",
			samples: []sample{{v: float64(box[BoxFailOpenAlerts])}}},
		&metric{name: "utm_worker_failures_total", typ: "counter", help: "Workers found hung or stopped (sid 2230004).",
			samples: []sample{{v: float64(box[BoxWorkerFailures])}}})
	if len(p.workers) > 0 { // process-wide counters: any worker's
		c := p.workers[0].eng.Counters()
		ms = append(ms, &metric{name: "utm_matcher_errors_total", typ: "counter",
			help: "Rule matching that fell back or gave up, by reason: prefilter (a Hyperscan compile or scan failed: slower, nothing missed), pcre_limit (a pcre hit its match limit and counted as no match), pcre_error.",
			samples: []sample{{reason: "prefilter", v: float64(c["prefilter_errors"])},
				{reason: "pcre_limit", v: float64(c["pcre_limit_hits"])},
				{reason: "pcre_error", v: float64(c["pcre_errors"])}}})
	}

	bw := bufio.NewWriter(w)
	for _, m := range ms {
		bw.WriteString("# HELP " + m.name + " " + m.help + "\n")
		bw.WriteString("# TYPE " + m.name + " " + m.typ + "\n")
		for _, s := range m.samples {
			bw.WriteString(m.name)
			if s.queue != "" || s.reason != "" {
				bw.WriteByte('{')
				sep := ""
				if s.queue != "" {
					bw.WriteString(`queue="` + s.queue + `"`)
					sep = ","
				}
				if s.reason != "" {
					bw.WriteString(sep + `reason="` + s.reason + `"`)
				}
				bw.WriteByte('}')
			}
			bw.WriteByte(' ')
			bw.WriteString(strconv.FormatFloat(s.v, 'g', -1, 64))
			bw.WriteByte('\n')
		}
	}
	return bw.Flush()
}

// MetricsContentType is the Content-Type of WriteMetrics' output.
const MetricsContentType = "text/plain; version=0.0.4; charset=utf-8"
