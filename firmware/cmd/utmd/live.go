package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/openutm/utm/dataplane/engine"
	"github.com/openutm/utm/dataplane/inject"
	"github.com/openutm/utm/dataplane/inline"
	"github.com/openutm/utm/dataplane/nfq"
	"github.com/openutm/utm/firmware/config"
	"github.com/openutm/utm/telemetry/alert"
	"github.com/openutm/utm/telemetry/eve"
	"github.com/openutm/utm/telemetry/spool"
	"github.com/openutm/utm/telemetry/uplink"
)

// sids of the box's own alerts about its inspection.
const (
	sidEngineRestart = 2230001 // the last run died: inspection was bypassed
	sidBypassed      = 2230003 // packets passed uninspected (fail-open)
	sidWorkerFailed  = 2230004 // a worker hung or stopped: exiting for a restart
)

// sink sends every event to eve.json and, with a spool, alerts to the
// spool (and so to the monitor). File records stay on the box. Workers
// call Emit concurrently: the spool and the eve writer each serialise
// their writes, and Emit touches nothing else shared.
type sink struct {
	boxID string
	eve   *eve.Writer
	spool *spool.Spool // nil: eve.json only (utmd -q without --nats)
}

func (s sink) Emit(ev *alert.Event) {
	ev.BoxID = s.boxID
	if ev.EventType == alert.TypeAlert && s.spool != nil {
		s.spool.Emit(ev) // assigns ev.ID before eve.json records it
	}
	s.eve.Emit(ev)
}

// live runs a pool of workers and what watches it: fail-open accounting,
// the worker watchdog's report, counters and metrics.
type live struct {
	log   *slog.Logger
	pool  *inline.Pool
	out   sink
	every time.Duration // fail-open check period
	// kernel returns the kernel's counters of the steering rules, with
	// "steer_steered" (packets its NFQUEUE rules sent to our queues) when
	// known; nil or a map without it when not.
	kernel   func() map[string]uint64
	fo       inline.FailOpen
	failures atomic.Uint64
	reloader *reloader // SIGHUP reloads the signatures (reload.go); nil: none
}

// uninspected returns the kernel's counters and the cumulative count of
// packets that passed uninspected.
func (l *live) uninspected() (map[string]uint64, uint64) {
	var k map[string]uint64
	if l.kernel != nil {
		k = l.kernel()
	}
	steered, known := k["steer_steered"]
	return k, l.pool.Uninspected(steered, known)
}

// counters are the heartbeat's: per queue q<N>_<name>, totals, the
// kernel's steer_<name>, uninspected and the fail-open reports.
func (l *live) counters() map[string]uint64 {
	m := l.pool.Counters()
	k, un := l.uninspected()
	for name, v := range k {
		m[name] = v
	}
	m["uninspected"] = un
	pk, al := l.fo.Reported()
	m["fail_open_reported"] = pk
	m["fail_open_alerts"] = al
	m["worker_failures"] = l.failures.Load()
	if l.reloader != nil {
		m["rule_reloads"] = l.reloader.reloads.Load()
		m["rule_reload_failures"] = l.reloader.failures.Load()
	}
	return m
}

// run reads the queues until ctx is done or a worker fails; a failure is
// logged and alerted and returned (utmd exits for its supervisor). It logs
// "inspecting" with attrs once every queue is bound.
func (l *live) run(ctx context.Context, attrs ...any) error {
	// The baseline of the fail-open accounting: what passed before the
	// queues were bound is the restart alert's business.
	k, un := l.uninspected()
	l.fo.Observe(time.Now(), un)
	base := [2]uint64{k["steer_steered"], l.pool.Counters()["nfq_packets"]}
	done := make(chan error, 1)
	go func() { done <- l.pool.Run(ctx) }()
	var err error
	select {
	case <-l.pool.Bound():
		l.log.Info("inspecting", attrs...)
		if l.reloader != nil {
			go l.reloader.watch(ctx)
		}
		go l.watchBypass(ctx, base)
		err = <-done
	case err = <-done:
	}
	var f *inline.Failure
	if errors.As(err, &f) {
		l.reportFailure(f)
	}
	return err
}

// reportFailure raises the ★★ sid 2230004 alert for a hung or stopped
// worker.
func (l *live) reportFailure(f *inline.Failure) {
	l.failures.Add(1)
	q := int(f.Queue)
	reason, sig, what := "worker-hung", "UTM engine worker hung: inspection bypassed",
		fmt.Sprintf("The engine worker of queue %d was stuck on one packet for %s; utmd restarts and the kernel passes its traffic uninspected meanwhile", q, f.Busy.Round(time.Millisecond))
	if f.Reason != "hung" {
		reason, sig, what = "worker-stopped", "UTM engine worker stopped: inspection bypassed",
			fmt.Sprintf("The engine worker of queue %d stopped (%v); utmd restarts and the kernel passes its traffic uninspected meanwhile", q, f.Err)
	}
	l.log.Error("engine worker failed: exiting so the supervisor restarts utmd; until then the kernel passes this queue's traffic uninspected (--queue-bypass). If it repeats, save eve.json and this log and report the packet that hung it (capture the queue's traffic and replay it with utmd -r)",
		"queue", q, "reason", f.Reason, "busy", f.Busy.Round(time.Millisecond), "err", f.Err)
	l.out.Emit(&alert.Event{
		Timestamp: alert.Timestamp(time.Now()),
		EventType: alert.TypeAlert,
		Alert: &alert.Alert{
			Action: alert.ActionAllowed, GID: 1, SignatureID: sidWorkerFailed, Rev: 1,
			Signature: sig, Category: "Box health", Severity: 2,
		},
		Engine:  &alert.Engine{Reason: reason, Queue: &q, Duration: f.Busy.Round(time.Millisecond).String()},
		Stars:   2,
		Schema:  alert.SchemaVersion,
		Summary: what,
	})
}

// watchBypass compares, every l.every, what the kernel steered with what
// the workers saw, and raises a ★★ alert (sid 2230003) when packets passed
// uninspected: at most one a minute, counts accumulating in between.
func (l *live) watchBypass(ctx context.Context, base [2]uint64) {
	t := time.NewTicker(l.every)
	defer t.Stop()
	lastSteered, lastSeen := base[0], base[1]
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		k, un := l.uninspected()
		n, due := l.fo.Observe(time.Now(), un)
		if !due {
			continue
		}
		steered, seen := k["steer_steered"], l.pool.Counters()["nfq_packets"]
		l.log.Warn("packets passed the box uninspected (fail-open: queue or socket buffer full, or no worker listening); the engine is overloaded: use more queues (-q A:B) or a bigger box",
			"packets", n, "steered", steered-lastSteered, "inspected", seen-lastSeen)
		l.out.Emit(&alert.Event{
			Timestamp: alert.Timestamp(time.Now()),
			EventType: alert.TypeAlert,
			Alert: &alert.Alert{
				Action: alert.ActionAllowed, GID: 1, SignatureID: sidBypassed, Rev: 1,
				Signature: fmt.Sprintf("UTM inspection bypassed: %d packets passed uninspected (queue full)", n),
				Category:  "Box health", Severity: 2,
			},
			Engine:  &alert.Engine{Reason: "fail-open", Count: n, Steered: steered - lastSteered, Inspected: seen - lastSeen},
			Stars:   2,
			Schema:  alert.SchemaVersion,
			Summary: fmt.Sprintf("%d packets passed the box without inspection because the engine could not keep up (fail-open keeps the office online)", n),
		})
		lastSteered, lastSeen = steered, seen
	}
}

// serveMetrics serves /metrics at addr until ctx is done. It returns once
// listening, so a bad address fails the start.
func (l *live) serveMetrics(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: listen on %s: %w (give --metrics a free host:port)", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		_, un := l.uninspected()
		_, al := l.fo.Reported()
		w.Header().Set("Content-Type", inline.MetricsContentType)
		l.pool.WriteMetrics(w, map[string]uint64{
			inline.BoxUninspected: un, inline.BoxFailOpenAlerts: al, inline.BoxWorkerFailures: l.failures.Load(),
		})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	go func() { <-ctx.Done(); srv.Close() }()
	l.log.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return nil
}

// engineConfig is the engine configuration of every worker.
func engineConfig(cfg config.Config, f flags, out engine.Sink, reset engine.Resetter, log *slog.Logger) engine.Config {
	policy, sink4, sink6, _ := cfg.Engine.DNSPolicy() // checked by config.Validate
	md5, sha1, _ := cfg.Engine.FileDigests()          // checked by config.Validate
	beaconIgnore, _ := cfg.Engine.BeaconIgnores()     // checked by config.Validate
	dns := map[string]engine.DNSPolicy{"alert": engine.DNSAlert, "nxdomain": engine.DNSNXDomain, "sinkhole": engine.DNSSinkhole}[policy]
	return engine.Config{
		DNSBlock:             dns,
		BlockUnscannable:     cfg.Engine.BlockUnscannable,
		IntelBlockConfidence: cfg.Engine.IntelBlockConfidence,
		Sinkhole4:            sink4,
		Sinkhole6:            sink6,
		MaxFlows:             cfg.Engine.MaxFlows,
		MaxScanSize:          cfg.Engine.MaxScanSize,
		MaxScanTotal:         cfg.Engine.MaxScanTotal,
		FileMD5:              md5,
		FileSHA1:             sha1,
		BeaconIgnore:         beaconIgnore,
		MalformedAccept:      cfg.Engine.MalformedAccept,
		InspectNone:          f.inspect == "none",
		Sink:                 out,
		Reset:                reset,
		Stars:                cfg.Stars,
		Logger:               log,
	}
}

// hangOn returns the test-only hang hook from the environment.
func hangOn(log *slog.Logger) []byte {
	v := os.Getenv(hangEnv)
	if v == "" {
		return nil
	}
	log.Warn("TEST HOOK: a worker will hang on a packet containing this string; never set this in production", "env", hangEnv, "string", v)
	return []byte(v)
}

// queueMode inspects NFQUEUE queues the caller steers (utmd -q): no
// interfaces, no steering rules; eve.json in -l, and with --nats alerts
// spooled and sent to the monitor too.
func queueMode(ctx context.Context, log *slog.Logger, f flags) error {
	cfg, err := config.Load(f.configFile)
	if err != nil {
		return err
	}
	dir := f.logDir
	if dir == "" {
		dir = "."
	}
	b, err := loadBundle(log, f, cfg.Signatures)
	if err != nil {
		return err
	}
	ew, err := eve.Create(filepath.Join(dir, "eve.json"))
	if err != nil {
		return err
	}
	defer ew.Close()
	boxID := cfg.BoxID
	if f.boxID != "" {
		boxID = f.boxID
	}
	out := sink{boxID: boxID, eve: ew}
	var sp *spool.Spool
	if f.natsURL != "" {
		data := cfg.DataDir
		if f.dataDir != "" {
			data = f.dataDir
		}
		if sp, err = spool.Open(filepath.Join(data, "spool.db"), spool.Options{BoxID: boxID, MaxEntries: cfg.Spool, GroupCommit: true,
			AggregateWindow: spool.DefaultAggregateWindow}); err != nil {
			return err
		}
		defer sp.Close()
		out.spool = sp
	} else {
		out.boxID = f.boxID
	}
	inj, err := inject.Open()
	if err != nil {
		return err
	}
	defer inj.Close()
	pool, err := inline.New(inline.Config{
		Queues:    f.queues,
		Engine:    engineConfig(cfg, f, out, inj, log),
		Bundle:    b,
		NFQ:       nfq.Config{FailOpen: true, Batch: f.verdictBatch, Spin: spinFlag(f.queueSpin), Logger: log}, // the caller's rules do not know the bypass mark: Bypass is a plain accept
		HangAfter: f.hangAfter,
		HangOn:    hangOn(log),
		Logger:    log,
	})
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := pool.Open(); err != nil {
		return err
	}
	queues := pool.Queues()
	l := &live{log: log, pool: pool, out: out, every: durationOr(cfg.Heartbeat, 10*time.Second),
		kernel: func() map[string]uint64 {
			if n, ok := inline.RuleCounters(queues); ok {
				return map[string]uint64{"steer_steered": n}
			}
			return nil
		}}
	if f.natsURL == "" && f.configFile == "" {
		l.every = 10 * time.Second // no heartbeat: check every 10 s
	}
	l.reloader = newReloader(log, f, cfg.Signatures, pool.SetBundle)
	if f.metrics != "" {
		if err := l.serveMetrics(ctx, f.metrics); err != nil {
			return err
		}
	}
	if f.natsURL != "" {
		up, err := uplink.Start(ctx, uplink.Config{
			URL: f.natsURL, BoxID: boxID, Version: version,
			NKeySeedFile: cfg.NATSNKeyFile, CAFile: cfg.NATSCAFile,
			Heartbeat: durationOr(cfg.Heartbeat, 2*time.Second),
			Counters:  l.counters, Logger: log,
		}, sp)
		if err != nil {
			return err
		}
		defer up.Close()
	}
	err = l.run(ctx, "queues", fmt.Sprint(queues), "workers", len(queues), "inspect", f.inspect,
		"eve", filepath.Join(dir, "eve.json"), "nats", f.natsURL, "hang_after", f.hangAfter)
	c := pool.Counters()
	log.Info("stopping", "packets", c["packets"], "alerts", c["alerts"], "uninspected", l.counters()["uninspected"])
	return err
}
