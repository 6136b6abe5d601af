// Command monitor is the central monitor: it embeds a NATS server with
// JetStream (or uses an external one), stores every box's alerts and
// heartbeats, and serves the portal.
//
//	monitor [--data DIR] [--nats-listen HOST:PORT | --nats-url URL]
//	        [--http HOST:PORT] [--offline-after 5m]
//
// It logs to stderr (slog text), one line per received alert, and stops
// cleanly on SIGINT or SIGTERM. A restart with the same --data keeps every
// alert, the box registry and the JetStream consumer position.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/openutm/utm/telemetry/monitor"
)

func main() {
	fs := flag.NewFlagSet("monitor", flag.ContinueOnError)
	var cfg monitor.Config
	fs.StringVar(&cfg.DataDir, "data", "/var/lib/utm-monitor", "data `dir`: alert store (monitor.db) and JetStream (jetstream/)")
	fs.StringVar(&cfg.NATSListen, "nats-listen", "127.0.0.1:4222", "embedded NATS `address` boxes connect to")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "use the external NATS (with JetStream) at `url` instead of the embedded server")
	fs.StringVar(&cfg.HTTPListen, "http", "127.0.0.1:8080", "portal `address`")
	fs.DurationVar(&cfg.OfflineAfter, "offline-after", monitor.DefaultOfflineAfter, "a box without a heartbeat for this `long` is offline: a ★★ alert and a mail")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "monitor: unexpected argument %q (see monitor -h)\n", fs.Arg(0))
		os.Exit(2)
	}
	if cfg.OfflineAfter <= 0 {
		fmt.Fprintln(os.Stderr, "monitor: --offline-after must be positive, e.g. 5m")
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	slog.SetDefault(log)
	cfg.Logger = log
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := monitor.Run(ctx, cfg); err != nil {
		log.Error("monitor failed", "err", err)
		os.Exit(1)
	}
	log.Info("monitor stopped")
}
