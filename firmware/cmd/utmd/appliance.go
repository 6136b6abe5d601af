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
	"github.com/openutm/utm/dataplane/inject"
	"github.com/openutm/utm/dataplane/inline"
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

func appliance(ctx context.Context, log *slog.Logger, f flags) (err error) {
	clean := false
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
	if len(f.queues) > 1 {
		// The steering rules send to one queue until board/steer balances
		// over the profile's queue range.
		return fmt.Errorf("--board takes one -q queue (the board's steering rules feed one queue); use -q A:B without --board and steer yourself")
	}
	if len(f.queues) == 1 {
		cfg.Queue = int(f.queues[0])
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
	sp, err := spool.Open(filepath.Join(cfg.DataDir, "spool.db"), spool.Options{BoxID: cfg.BoxID, MaxEntries: cfg.Spool, GroupCommit: true,
		AggregateWindow: spool.DefaultAggregateWindow})
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
	pool, err := inline.New(inline.Config{
		Queues: prof.QueueNums(),
		Engine: engineConfig(cfg, f, out, inj, log),
		Bundle: b,
		NFQ: nfq.Config{MaxQueueLen: prof.QueueLen, ReadBuffer: prof.RcvBuf, FailOpen: true, Batch: f.verdictBatch, Spin: spinFlag(f.queueSpin),
			BypassMark: prof.Mark(), KernelBypass: cfg.Steer, Logger: log},
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
	l := &live{log: log, pool: pool, out: out, every: 10 * time.Second,
		reloader: newReloader(log, f, cfg.Signatures, pool.SetBundle)}
	if cfg.Steer {
		l.kernel = func() map[string]uint64 {
			sc, err := steer.Counters(prof)
			if err != nil {
				return nil
			}
			m := make(map[string]uint64, len(sc))
			for k, v := range sc {
				m["steer_"+k] = v
			}
			return m
		}
	}
	if f.metrics != "" {
		if err := l.serveMetrics(ctx, f.metrics); err != nil {
			return err
		}
	}

	up, err := uplink.Start(ctx, uplink.Config{
		URL: cfg.NATSURL, BoxID: cfg.BoxID, Version: version,
		NKeySeedFile: cfg.NATSNKeyFile, CAFile: cfg.NATSCAFile,
		Heartbeat: durationOr(cfg.Heartbeat, 2*time.Second),
		Counters:  l.counters,
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
		// Removed on a clean stop only: after kill -9, or a worker failure
		// that makes utmd exit for a restart, the rules stay and
		// --queue-bypass lets traffic through while nobody listens.
		defer func() {
			if clean {
				if err := steer.Remove(prof); err != nil {
					log.Error("could not remove steering rules", "err", err)
				}
			}
		}()
	}
	go keepAlive(ctx, alive)
	err = l.run(ctx, "box_id", cfg.BoxID, "board", prof.Name, "lan", prof.LAN, "wan", prof.WAN,
		"queues", fmt.Sprint(pool.Queues()), "inspect", f.inspect, "nats", cfg.NATSURL, "eve", filepath.Join(cfg.LogDir, "eve.json"))
	c := pool.Counters()
	log.Info("stopping", "packets", c["packets"], "alerts", c["alerts"])
	if err != nil {
		return err // the alive file stays: the restart is reported
	}
	clean = true
	os.Remove(alive)
	return nil
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
