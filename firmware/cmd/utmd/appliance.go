package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/openutm/utm/board/netif"
	"github.com/openutm/utm/board/profile"
	"github.com/openutm/utm/board/steer"
	"github.com/openutm/utm/dataplane/engine"
	"github.com/openutm/utm/dataplane/inject"
	"github.com/openutm/utm/dataplane/nfq"
	"github.com/openutm/utm/firmware/config"
	"github.com/openutm/utm/telemetry/alert"
	"github.com/openutm/utm/telemetry/eve"
	"github.com/openutm/utm/telemetry/spool"
	"github.com/openutm/utm/telemetry/uplink"
)

// aliveFile is touched every second while the engine runs and removed on a
// clean stop. Finding it at start means the last run died: the kernel let
// traffic through uninspected (fail-open) until now, and the SOC is told.
const aliveFile = "engine.alive"

// sid of the box's own alert about bypassed inspection.
const sidEngineRestart = 2230001

// sink sends every event to eve.json and alerts to the spool (and so to the
// monitor). File records stay on the box.
type sink struct {
	boxID string
	eve   *eve.Writer
	spool *spool.Spool
}

func (s sink) Emit(ev *alert.Event) {
	ev.BoxID = s.boxID
	if ev.EventType == alert.TypeAlert {
		s.spool.Emit(ev) // assigns ev.ID before eve.json records it
	}
	s.eve.Emit(ev)
}

func appliance(ctx context.Context, log *slog.Logger, f flags) error {
	cfg, err := config.Load(f.configFile)
	if err != nil {
		return err
	}
	if f.board != "" {
		cfg.Board = f.board
	}
	if f.boxID != "" {
		cfg.BoxID = f.boxID
	}
	if f.natsURL != "" {
		cfg.NATSURL = f.natsURL
	}
	if f.dataDir != "" {
		cfg.DataDir = f.dataDir
	}
	if f.logDir != "" {
		cfg.LogDir = f.logDir
	}
	if f.queue >= 0 {
		cfg.Queue = f.queue
	}
	if f.noSteer {
		cfg.Steer = false
	}
	prof, err := profile.Lookup(cfg.Board)
	if err != nil {
		return err
	}
	if cfg.Queue >= 0 {
		prof.Queue = uint16(cfg.Queue)
	}
	for _, d := range []string{cfg.DataDir, cfg.LogDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return fmt.Errorf("create %s: %w (check the disk and the path in the config)", d, err)
		}
	}
	if err := netif.Up(prof.LAN, prof.WAN); err != nil {
		return err
	}
	b, err := loadBundle(log, f, cfg.Signatures)
	if err != nil {
		return err
	}
	sp, err := spool.Open(filepath.Join(cfg.DataDir, "spool.db"), spool.Options{BoxID: cfg.BoxID, MaxEntries: cfg.Spool})
	if err != nil {
		return err
	}
	defer sp.Close()
	ew, err := eve.Create(filepath.Join(cfg.LogDir, "eve.json"))
	if err != nil {
		return err
	}
	defer ew.Close()
	out := sink{boxID: cfg.BoxID, eve: ew, spool: sp}

	alive := filepath.Join(cfg.DataDir, aliveFile)
	reportUncleanStop(log, out, alive, cfg.BoxID)

	inj, err := inject.Open()
	if err != nil {
		return err
	}
	defer inj.Close()
	eng := engine.New(engine.Config{
		MaxFlows:        cfg.Engine.MaxFlows,
		MaxScanSize:     cfg.Engine.MaxScanSize,
		MalformedAccept: cfg.Engine.MalformedAccept,
		InspectNone:     f.inspect == "none",
		Sink:            out,
		Reset:           inj,
		Logger:          log,
	}, b)

	q, err := nfq.Open(nfq.Config{Queue: prof.Queue, MaxQueueLen: prof.QueueLen, FailOpen: true,
		BypassMark: prof.Mark(), KernelBypass: cfg.Steer, Logger: log},
		func(pkt []byte) nfq.Verdict {
			switch eng.Process(time.Now(), pkt) {
			case engine.Accept:
				return nfq.Accept
			case engine.Bypass:
				return nfq.Bypass
			}
			return nfq.Drop
		})
	if err != nil {
		return err
	}
	defer q.Close()

	up, err := uplink.Start(ctx, uplink.Config{
		URL: cfg.NATSURL, BoxID: cfg.BoxID, Version: version,
		Heartbeat: durationOr(cfg.Heartbeat, 2*time.Second),
		Counters:  func() map[string]uint64 { return counters(eng, q, prof, cfg.Steer) },
		Logger:    log,
	}, sp)
	if err != nil {
		return err
	}
	defer up.Close()

	if cfg.Steer {
		if err := steer.Install(prof); err != nil {
			return err
		}
		// Removed on a clean stop only: after kill -9 the rules stay and
		// --queue-bypass lets traffic through while nobody listens.
		defer func() {
			if err := steer.Remove(prof); err != nil {
				log.Error("could not remove steering rules", "err", err)
			}
		}()
	}
	go keepAlive(ctx, alive)
	if cfg.Steer {
		go watchBypass(ctx, log, out, 10*time.Second, func() map[string]uint64 { return counters(eng, q, prof, true) })
	}
	defer os.Remove(alive)
	log.Info("inspecting", "box_id", cfg.BoxID, "board", prof.Name, "lan", prof.LAN, "wan", prof.WAN,
		"queue", prof.Queue, "nats", cfg.NATSURL, "eve", filepath.Join(cfg.LogDir, "eve.json"))
	err = q.Run(ctx)
	log.Info("stopping", "packets", eng.Stats().Packets.Load(), "alerts", eng.Stats().Alerts.Load())
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func counters(eng *engine.Engine, q *nfq.Queue, prof profile.Profile, steered bool) map[string]uint64 {
	m := eng.Counters()
	for k, v := range q.Counters() {
		m["nfq_"+k] = v
	}
	if steered {
		if sc, err := steer.Counters(prof); err == nil {
			for k, v := range sc {
				m["steer_"+k] = v
			}
			// Packets the rules sent to the queue that the engine never
			// saw: the kernel let them through (queue full, no listener).
			if sc["steered"] > m["nfq_packets"] {
				m["uninspected"] = sc["steered"] - m["nfq_packets"]
			} else {
				m["uninspected"] = 0
			}
		}
	}
	return m
}

// sidBypassed is the box's alert about traffic that passed uninspected.
const sidBypassed = 2230003

// bypassThreshold ignores packets merely in flight between the rule
// counter and the engine.
const bypassThreshold = 64

// watchBypass raises a ★★ alert when packets pass the box uninspected
// (fail-open: queue or socket buffer full), at most once per interval,
// with the count since the last alert.
func watchBypass(ctx context.Context, log *slog.Logger, out sink, every time.Duration, read func() map[string]uint64) {
	t := time.NewTicker(every)
	defer t.Stop()
	var reported uint64
	if m := read(); m != nil {
		reported = m["uninspected"] + m["nfq_id_gaps"]
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m := read()
		now := m["uninspected"] + m["nfq_id_gaps"]
		if now < reported+bypassThreshold {
			continue
		}
		n := now - reported
		reported = now
		log.Warn("packets passed the box uninspected (fail-open); the engine is overloaded or was not listening", "packets", n)
		out.Emit(&alert.Event{
			Timestamp: alert.Timestamp(time.Now()),
			EventType: alert.TypeAlert,
			Alert: &alert.Alert{
				Action: alert.ActionAllowed, GID: 1, SignatureID: sidBypassed, Rev: 1,
				Signature: "UTM inspection bypassed: packets passed uninspected (queue full)",
				Category:  "Box health", Severity: 2,
			},
			Engine: &alert.Engine{Reason: "fail-open", Count: n, Duration: every.String()},
			Stars:  2,
			Schema: alert.SchemaVersion,
		})
	}
}

// keepAlive touches the alive file every second so its age tells, after a
// crash, how long inspection was bypassed.
func keepAlive(ctx context.Context, path string) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		now := time.Now()
		if err := os.WriteFile(path, []byte(now.UTC().Format(time.RFC3339Nano)), 0o640); err != nil {
			slog.Warn("cannot write the engine's alive file; a crash will not be reported on restart", "path", path, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reportUncleanStop raises the ★★ "inspection bypassed" alert when the last
// run did not stop cleanly.
func reportUncleanStop(log *slog.Logger, out sink, path, boxID string) {
	st, err := os.Stat(path)
	if err != nil {
		return
	}
	gap := time.Since(st.ModTime()).Round(time.Second)
	log.Warn("the engine did not stop cleanly last time; traffic passed uninspected until now", "since", st.ModTime(), "gap", gap)
	out.Emit(&alert.Event{
		Timestamp: alert.Timestamp(time.Now()),
		EventType: alert.TypeAlert,
		Alert: &alert.Alert{
			Action: alert.ActionAllowed, GID: 1, SignatureID: sidEngineRestart, Rev: 1,
			Signature: "UTM engine restarted after an unclean stop: inspection was bypassed",
			Category:  "Box health", Severity: 2,
		},
		Engine:  &alert.Engine{Reason: "engine-restart", Duration: gap.String()},
		Stars:   2,
		BoxID:   boxID,
		Schema:  alert.SchemaVersion,
		Summary: fmt.Sprintf("Inspection was bypassed for about %s while the engine was down (fail-open); it is inspecting again", gap),
	})
}
