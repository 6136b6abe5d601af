package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/openutm/utm/firmware/config"
	"github.com/openutm/utm/signatures/bundle"
	"github.com/openutm/utm/signatures/rules"
)

// hup receives SIGHUP from the start of live inspection on (main installs
// it before anything slow, so an early SIGHUP reloads instead of killing
// utmd, SIGHUP's default).
var hup = make(chan os.Signal, 1)

func notifyHUP() { signal.Notify(hup, syscall.SIGHUP) }

func hupStop() { signal.Stop(hup) }

// reloader reloads the signatures on SIGHUP without stopping inspection:
// the new bundle (rules, YARA, hashes, intel, from the files the config
// names, re-read, or -S) is loaded and compiled on this goroutine, off the
// packet path, then swapped into every worker at once (engine.SetBundle:
// an atomic pointer the engine reads once per packet; packets in flight
// finish with the old bundle). Flows keep their state. A bundle that fails
// to load leaves the old one in place. Only the signature files are re-read
// from the config: other settings (stars, limits, queues) need a restart.
type reloader struct {
	log      *slog.Logger
	f        flags
	sig      config.Signatures // used when utmd runs without -c
	set      func(*bundle.Bundle)
	reloads  atomic.Uint64
	failures atomic.Uint64
}

func newReloader(log *slog.Logger, f flags, sig config.Signatures, set func(*bundle.Bundle)) *reloader {
	return &reloader{log: log, f: f, sig: sig, set: set}
}

// watch reloads on every SIGHUP until ctx is done.
func (r *reloader) watch(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.reload()
		}
	}
}

// reload loads, compiles and swaps in the signatures; it logs
// "rules reloaded: loaded=N rejected=M" or what failed and what to do.
func (r *reloader) reload() error {
	start := time.Now()
	r.log.Info("SIGHUP: reloading signatures; inspection goes on with the current ones meanwhile")
	sig := r.sig
	if r.f.configFile != "" {
		cfg, err := config.Load(r.f.configFile)
		if err != nil {
			r.failures.Add(1)
			r.log.Error("rules reload failed: the configuration does not load; still inspecting with the previous signatures. Fix the file and send SIGHUP again",
				"config", r.f.configFile, "err", err)
			return err
		}
		sig = cfg.Signatures
	}
	b, err := loadBundle(r.log, r.f, sig)
	if err != nil {
		r.failures.Add(1)
		r.log.Error("rules reload failed: still inspecting with the previous signatures. Fix or restore the file named in the error and send SIGHUP again (utmd -T -S FILE checks a rule file first)",
			"err", err)
		return err
	}
	// Build whatever the Set builds lazily here, not on the first packet.
	b.Rules.Match(&rules.Input{}, nil)
	compiled := time.Since(start)
	r.set(b)
	r.log.Info(fmt.Sprintf("rules reloaded: loaded=%d rejected=%d", b.Rules.Len(), len(b.RuleErrors)),
		"took", compiled.Round(time.Millisecond), "intel", b.Intel.Len(), "version", b.Version)
	r.reloads.Add(1)
	return nil
}
