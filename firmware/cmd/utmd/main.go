// Command utmd is the box's daemon: the inline inspection engine between the
// office LAN and the internet, and the same engine replaying a capture.
//
//	utmd -r FILE.pcap [-S RULES] [-l DIR]          replay: write DIR/eve.json
//	utmd -q N|-q A:B ... [-S RULES] [-l DIR]       inline on NFQUEUE queues the caller
//	     [--inspect=none|full] [--metrics ADDR]    steered (no rules installed): one
//	     [--nats URL --box-id ID --data DIR]       engine worker per queue
//	utmd [-c FILE] [--board lab] [--box-id ID]     appliance: the board's interfaces,
//	     [--nats URL] [--data DIR] [-l DIR]        queues and steering rules, spool,
//	     [--no-steer] [--metrics ADDR]             uplink to the monitor
//	utmd --supervise ARGS...                       run utmd ARGS as a child, restart it
//	utmd -T [-S RULES]                             check rules and exit
//
// Inline, SIGHUP reloads the signatures (the -S file, or the rule, YARA,
// hash and intel files the config names) without stopping inspection and
// logs "rules reloaded: loaded=N rejected=M"; a set that fails to load
// leaves the running one in place.
//
// The flags -r, -S, -l, -q and -T are Suricata's; analysts know them.
//
// Inline, a worker busy with one packet longer than --hang-after, or whose
// queue reader stops, makes utmd raise a ★★ alert (sid 2230004) and exit
// with status 3 so its supervisor (systemd, firmware/systemd/utmd.service,
// or utmd --supervise) restarts it; meanwhile the kernel lets traffic
// through uninspected (--queue-bypass). Test-only: the environment
// variable UTMD_TEST_HANG_ON=STRING makes a worker hang on a packet
// containing STRING, so tests can prove the watchdog.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/openutm/utm/dataplane/engine"
	"github.com/openutm/utm/dataplane/inline"
	"github.com/openutm/utm/dataplane/nfq"
	"github.com/openutm/utm/dataplane/replay"
	"github.com/openutm/utm/firmware/config"
	"github.com/openutm/utm/signatures/bundle"
	"github.com/openutm/utm/telemetry/eve"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitWorkerFailed is the exit status after a hung or stopped worker.
const exitWorkerFailed = 3

// hangEnv is the test-only hook naming a byte string a worker hangs on.
const hangEnv = "UTMD_TEST_HANG_ON"

type flags struct {
	replay, rules, logDir, configFile string
	board, boxID, natsURL, dataDir    string
	inspect, metrics                  string
	queues                            queueList
	intel                             stringList
	hangAfter                         time.Duration
	verdictBatch                      int
	queueSpin                         time.Duration
	noSteer, testRules, showVersion   bool
	supervise                         bool
	profileRules                      bool
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// queueList is the repeatable -q flag: N or A:B.
type queueList []uint16

func (q *queueList) String() string {
	var s []string
	for _, n := range *q {
		s = append(s, strconv.Itoa(int(n)))
	}
	return strings.Join(s, ",")
}

func (q *queueList) Set(v string) error {
	a, b, isRange := strings.Cut(v, ":")
	lo, err := strconv.ParseUint(a, 10, 16)
	if err != nil {
		return fmt.Errorf("queue %q: want a number 0..65535 or a range A:B", v)
	}
	hi := lo
	if isRange {
		if hi, err = strconv.ParseUint(b, 10, 16); err != nil || hi < lo {
			return fmt.Errorf("queue range %q: want A:B with A <= B, both 0..65535", v)
		}
	}
	if hi-lo >= 64 {
		return fmt.Errorf("queue range %q: more than 64 queues", v)
	}
	for n := lo; n <= hi; n++ {
		for _, have := range *q {
			if have == uint16(n) {
				return fmt.Errorf("queue %d given twice", n)
			}
		}
		*q = append(*q, uint16(n))
	}
	return nil
}

func main() {
	var f flags
	fs := flag.NewFlagSet("utmd", flag.ExitOnError)
	fs.StringVar(&f.replay, "r", "", "replay a pcap or pcapng `file` instead of inspecting live traffic")
	fs.StringVar(&f.rules, "S", "", "load rules from `file` instead of the default bundle's rules")
	fs.StringVar(&f.logDir, "l", "", "write eve.json into `dir` (default: the config's log_dir in appliance mode; . otherwise)")
	fs.StringVar(&f.configFile, "c", "", "configuration `file` (JSON); embedded defaults when empty")
	fs.StringVar(&f.board, "board", "", "appliance mode with the board profile `name` (default from config: lab)")
	fs.StringVar(&f.boxID, "box-id", "", "this box's `id` at the monitor")
	fs.StringVar(&f.natsURL, "nats", "", "the monitor's NATS `url` (with -q: also spool alerts and send them there)")
	fs.StringVar(&f.dataDir, "data", "", "state `dir`: spool and engine state")
	fs.Var(&f.queues, "q", "inspect NFQUEUE `queue` N, or the range A:B (repeatable); without --board the caller steers")
	fs.Var(&f.intel, "intel", "load threat-intel indicators from `file` too (format detected: plain, hosts, maltrail, abuse.ch Feodo/SSLBL/JA3, URLhaus, ThreatFox CSV; repeatable)")
	fs.StringVar(&f.inspect, "inspect", "full", "`mode`: full, or none (decode and track flows, accept everything: the benchmark baseline)")
	fs.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics at http://`addr`/metrics (e.g. 127.0.0.1:9101)")
	fs.DurationVar(&f.hangAfter, "hang-after", inline.DefaultHangAfter, "a worker busy with one packet this long is hung: alert and exit for a restart")
	fs.IntVar(&f.verdictBatch, "verdict-batch", 64, "send up to `n` accepts as one batch verdict while more packets wait (1: one verdict per packet)")
	fs.DurationVar(&f.queueSpin, "queue-spin", nfq.DefaultSpin, "poll an empty queue this long before sleeping, while the waits between packets are mostly shorter (0: never; costs CPU, saves wake-ups)")
	fs.BoolVar(&f.noSteer, "no-steer", false, "do not install the iptables steering rules (the caller steers)")
	fs.BoolVar(&f.testRules, "T", false, "load the rules, report what was rejected and exit")
	fs.BoolVar(&f.supervise, "supervise", false, "run utmd with the other flags as a child and restart it whenever it dies")
	fs.BoolVar(&f.showVersion, "version", false, "print the version and exit")
	fs.BoolVar(&f.profileRules, "profile-rules", false, "with -r: profile every rule and print the 20 most expensive at the end")
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
	case f.supervise:
		if f.replay != "" || f.testRules {
			fmt.Fprintln(os.Stderr, "utmd: --supervise is for live inspection (-q or appliance), not -r or -T")
			os.Exit(2)
		}
		os.Exit(supervise(log, os.Args[1:]))
	case f.testRules:
		err = testRules(os.Stdout, f)
	case f.replay != "":
		err = runReplay(log, f)
	default:
		notifyHUP() // SIGHUP reloads the signatures (reload.go)
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		if len(f.queues) > 0 && f.board == "" {
			err = queueMode(ctx, log, f)
		} else {
			err = appliance(ctx, log, f)
		}
		stop()
	}
	if err != nil {
		log.Error("utmd stopped", "err", err)
		var fail *inline.Failure
		if errors.As(err, &fail) {
			os.Exit(exitWorkerFailed)
		}
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
		IntelFiles:     append(append([]string(nil), sig.IntelFiles...), f.intel...),
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
	for _, f := range b.IntelFiles {
		st := f.Stats
		log.Info("threat intel loaded", "file", f.Path, "format", st.Format, "indicators", st.Indicators(), "duplicates", st.Duplicates, "skipped", st.Skipped, "bad_lines", st.Bad)
		for _, p := range st.Problems {
			log.Warn("threat intel line skipped", "where", fmt.Sprintf("%s:%d", p.File, p.Line), "reason", p.Reason)
		}
	}
	for _, le := range b.AVErrors {
		log.Warn("antivirus rule file or hash line skipped", "where", le.Error())
	}
	log.Info("signatures loaded", "version", b.Version, "rules", b.Rules.Len(), "rules_rejected", len(b.RuleErrors), "intel", b.Intel.Len(),
		"yara_rules", b.AV.RuleCount, "hashes", b.AV.HashCount, "av_skipped", len(b.AVErrors), "av_gate", b.AV.Gate)
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
	if f.profileRules {
		b.Rules.EnableProfiling()
		defer printRuleProfile(os.Stdout, b.Rules, 20)
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
	// One worker, never opened: the packet path of inline mode.
	pool, err := inline.New(inline.Config{Queues: []uint16{0}, Bundle: b, Logger: log,
		Engine: engine.Config{Sink: w, Logger: log, InspectNone: f.inspect == "none"}})
	if err != nil {
		return err
	}
	wk := pool.Workers()[0]
	if _, err := replay.File(f.replay, wk); err != nil {
		return err
	}
	s := wk.Engine().Stats()
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

// spinFlag maps --queue-spin to nfq.Config.Spin (whose 0 is the default).
func spinFlag(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}
