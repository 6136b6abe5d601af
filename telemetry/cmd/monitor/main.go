// Command monitor is the central monitor: it embeds a NATS server with
// JetStream (or uses an external one), stores every box's alerts and
// heartbeats, and serves the portal.
//
//	monitor [--data DIR] [--nats-listen HOST:PORT | --nats-url URL]
//	        [--http HOST:PORT] [--offline-after 10s]
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/openutm/utm/telemetry/monitor"
)

func main() {
	var cfg monitor.Config
	flag.StringVar(&cfg.DataDir, "data", "/var/lib/utm-monitor", "data `dir`: alert store and JetStream")
	flag.StringVar(&cfg.NATSListen, "nats-listen", "127.0.0.1:4222", "embedded NATS `address` boxes connect to")
	flag.StringVar(&cfg.NATSURL, "nats-url", "", "use the external NATS at `url` instead of the embedded server")
	flag.StringVar(&cfg.HTTPListen, "http", "127.0.0.1:8080", "portal `address`")
	flag.DurationVar(&cfg.OfflineAfter, "offline-after", 10*time.Second, "a box without a heartbeat for this `long` is offline")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	slog.SetDefault(log)
	cfg.Logger = log
	m, err := monitor.Start(cfg)
	if err != nil {
		log.Error("monitor did not start", "err", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	<-ctx.Done()
	stop()
	log.Info("monitor stopping")
	if err := m.Close(); err != nil {
		log.Error("monitor stopped with an error", "err", err)
		os.Exit(1)
	}
}
