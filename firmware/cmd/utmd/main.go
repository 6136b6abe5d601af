// Command utmd is the box's daemon: the inline inspection engine between the
// office LAN and the internet, and the same engine replaying a capture.
//
//	utmd -r FILE.pcap [-S RULES] [-l DIR]       replay: write DIR/eve.json
//	utmd [-c FILE] [--board lab] [--box-id ID]  appliance: inspect NFQUEUE
//	     [--nats URL] [--data DIR] [-l DIR] [-q N] [--no-steer]
//	utmd -T [-S RULES]                          check rules and exit
//
// The flags -r, -S, -l, -q and -T are Suricata's; analysts know them.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/openutm/utm/dataplane/engine"
	"github.com/openutm/utm/dataplane/replay"
	"github.com/openutm/utm/firmware/config"
	"github.com/openutm/utm/signatures/bundle"
	"github.com/openutm/utm/telemetry/eve"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type flags struct {
	replay, rules, logDir, configFile string
	board, boxID, natsURL, dataDir    string
	inspect                           string
	queue                             int
	noSteer, testRules, showVersion   bool
}

func main() {
	var f flags
	fs := flag.NewFlagSet("utmd", flag.ExitOnError)
	fs.StringVar(&f.replay, "r", "", "replay a pcap or pcapng `file` instead of inspecting live traffic")
	fs.StringVar(&f.rules, "S", "", "load rules from `file` instead of the default bundle's rules")
	fs.StringVar(&f.logDir, "l", "", "write eve.json into `dir` (default: the config's log_dir; . for replay)")
	fs.StringVar(&f.configFile, "c", "", "configuration `file` (JSON); embedded defaults when empty")
	fs.StringVar(&f.board, "board", "", "board profile `name` (default from config: lab)")
	fs.StringVar(&f.boxID, "box-id", "", "this box's `id` at the monitor")
	fs.StringVar(&f.natsURL, "nats", "", "the monitor's NATS `url`")
	fs.StringVar(&f.dataDir, "data", "", "state `dir`: spool and engine state")
	fs.IntVar(&f.queue, "q", -1, "NFQUEUE `number` (default: the board's)")
	fs.StringVar(&f.inspect, "inspect", "full", "`mode`: full, or none (decode and track flows, accept everything: the benchmark baseline)")
	fs.BoolVar(&f.noSteer, "no-steer", false, "do not install the iptables steering rules (the caller steers)")
	fs.BoolVar(&f.testRules, "T", false, "load the rules, report what was rejected and exit")
	fs.BoolVar(&f.showVersion, "version", false, "print the version and exit")
	fs.Parse(os.Args[1:])

	if f.inspect != "full" && f.inspect != "none" {
		fmt.Fprintf(os.Stderr, "utmd: --inspect must be full or none, not %q\n", f.inspect)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	slog.SetDefault(log)
	var err error
	switch {
	case f.showVersion:
		fmt.Println("utmd", version)
		return
	case f.testRules:
		err = testRules(os.Stdout, f)
	case f.replay != "":
		err = runReplay(log, f)
	default:
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		err = appliance(ctx, log, f)
		stop()
	}
	if err != nil {
		log.Error("utmd stopped", "err", err)
		os.Exit(1)
	}
}

// loadBundle returns the default bundle, or with -S the given rules in place
// of the default rules, plus the configured extra signature files.
func loadBundle(log *slog.Logger, f flags, sig config.Signatures) (*bundle.Bundle, error) {
	opts := bundle.Options{
		RuleFiles:      sig.RuleFiles,
		NoDefaultRules: sig.NoDefaultRules,
		YaraDirs:       sig.YaraDirs,
		HashFiles:      sig.HashFiles,
		IntelFiles:     sig.IntelFiles,
	}
	if f.rules != "" {
		opts.RuleFiles = []string{f.rules}
		opts.NoDefaultRules = true
	}
	b, err := bundle.Load(opts)
	if err != nil {
		return nil, err
	}
	for _, le := range b.RuleErrors {
		log.Warn("rule skipped", "where", fmt.Sprintf("%s:%d", le.File, le.Line), "reason", le.Reason)
	}
	log.Info("signatures loaded", "version", b.Version, "rules", b.Rules.Len(), "rules_rejected", len(b.RuleErrors), "intel", b.Intel.Len())
	return b, nil
}

func testRules(w io.Writer, f flags) error {
	if f.inspect != "full" && f.inspect != "none" {
		fmt.Fprintf(os.Stderr, "utmd: --inspect must be full or none, not %q\n", f.inspect)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(w, nil))
	b, err := loadBundle(log, f, config.Signatures{})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "rules: loaded=%d rejected=%d\n", b.Rules.Len(), len(b.RuleErrors))
	return nil
}

// runReplay runs the engine over a capture and writes DIR/eve.json.
func runReplay(log *slog.Logger, f flags) error {
	b, err := loadBundle(log, f, config.Signatures{})
	if err != nil {
		return err
	}
	dir := f.logDir
	if dir == "" {
		dir = "."
	}
	w, err := eve.Create(filepath.Join(dir, "eve.json"))
	if err != nil {
		return err
	}
	defer w.Close()
	eng := engine.New(engine.Config{Sink: w, Logger: log}, b)
	if _, err := replay.File(f.replay, eng); err != nil {
		return err
	}
	s := eng.Stats()
	log.Info("replay done", "file", f.replay, "packets", s.Packets.Load(), "alerts", s.Alerts.Load(),
		"files", s.Files.Load(), "malformed", s.Malformed.Load()+s.Truncated.Load(), "eve", filepath.Join(dir, "eve.json"))
	return w.Close()
}

func durationOr(d config.Duration, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return time.Duration(d)
}
