// Command monitor is the central monitor: it embeds a NATS server with
// JetStream (or uses an external one), stores every box's alerts and
// heartbeats, and serves the portal.
//
//	monitor [--data DIR] [--nats-listen HOST:PORT | --nats-url URL]
//	        [--http HOST:PORT] [--offline-after 5m] [--public-url URL]
//	        [--retention 4392h] [--tls-cert FILE --tls-key FILE]
//	        [--smtp HOST:PORT --mail-from ADDR --boxes FILE [--smtp-starttls MODE]
//	         [--smtp-user USER] [--mail-per-hour 10] [--mail-dedupe 1h]]
//	        [--read-token-file FILE]
//
// The portal has no default password: while none is set, the monitor logs a
// one-time setup URL (setup_url=...) on stderr; open it to set the admin
// password.
//
// It logs to stderr (slog text), one line per received alert, and stops
// cleanly on SIGINT or SIGTERM. A restart with the same --data keeps every
// alert, the box registry and the JetStream consumer position.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/openutm/utm/telemetry/monitor"
	"github.com/openutm/utm/telemetry/notify"
)

func main() {
	fs := flag.NewFlagSet("monitor", flag.ContinueOnError)
	var cfg monitor.Config
	fs.StringVar(&cfg.DataDir, "data", "/var/lib/utm-monitor", "data `dir`: alert store (monitor.db) and JetStream (jetstream/)")
	fs.StringVar(&cfg.NATSListen, "nats-listen", "127.0.0.1:4222", "embedded NATS `address` boxes connect to")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "use the external NATS (with JetStream) at `url` instead of the embedded server")
	fs.StringVar(&cfg.HTTPListen, "http", "127.0.0.1:8080", "portal `address`")
	fs.DurationVar(&cfg.OfflineAfter, "offline-after", monitor.DefaultOfflineAfter, "a box without a heartbeat for this `long` is offline: a ★★ alert and a mail")
	fs.DurationVar(&cfg.Retention, "retention", monitor.DefaultRetention, "keep alerts this `long` (a daily sweep deletes older ones)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "serve the portal over HTTPS with this certificate `file` (PEM; with --tls-key)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "private key `file` (PEM) for --tls-cert")
	var tokenFile string
	fs.StringVar(&tokenFile, "read-token-file", "", "`file` holding a token (32+ characters) that lets GET requests with \"Authorization: Bearer TOKEN\" read the portal and API without login")
	var natsBoxes, natsCert, natsKey string
	fs.StringVar(&natsBoxes, "nats-boxes", "", "box credential `file`: one \"BOX-ID NKEY-PUBLIC-KEY\" per line; each box may publish only its own subjects (without it NATS is open: a lab only)")
	fs.StringVar(&natsCert, "nats-tls-cert", "", "require TLS on NATS with this certificate `file` (PEM; with --nats-tls-key)")
	fs.StringVar(&natsKey, "nats-tls-key", "", "private key `file` (PEM) for --nats-tls-cert")
	fs.StringVar(&cfg.PublicURL, "public-url", "", "the portal's `URL` as people reach it, for links in mails (default: the --http address)")
	var mc notify.Config
	var boxes string
	fs.StringVar(&mc.Relay, "smtp", "", "mail ★★★ alerts and offline boxes through the SMTP relay at `host:port` (needs --mail-from and --boxes)")
	fs.StringVar(&mc.From, "mail-from", "", "sender `address` of alert mails")
	fs.StringVar(&mc.StartTLS, "smtp-starttls", notify.StartTLSOpportunistic, "STARTTLS `mode`: opportunistic, required or off")
	fs.StringVar(&mc.Username, "smtp-user", "", "AUTH PLAIN `user` at the relay; the password is read from $UTM_SMTP_PASSWORD")
	fs.StringVar(&boxes, "boxes", "", "box registry `file` (JSON): mail recipients and language per box")
	fs.IntVar(&mc.PerHour, "mail-per-hour", 10, "at most `n` alert mails per box per hour, then one digest")
	fs.DurationVar(&mc.Dedupe, "mail-dedupe", time.Hour, "one mail per box, signature, source and destination within this `window`")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "monitor: --read-token-file:", err)
			os.Exit(2)
		}
		cfg.ReadToken = strings.TrimSpace(string(b))
	}
	if mc.Relay != "" {
		if boxes == "" {
			fmt.Fprintln(os.Stderr, "monitor: --smtp needs --boxes FILE naming who is mailed for which box")
			os.Exit(2)
		}
		reg, err := notify.LoadRegistry(boxes)
		if err != nil {
			fmt.Fprintln(os.Stderr, "monitor:", err)
			os.Exit(2)
		}
		mc.Registry, mc.Password = reg, os.Getenv("UTM_SMTP_PASSWORD")
		cfg.Mail = &mc
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "monitor: unexpected argument %q (see monitor -h)\n", fs.Arg(0))
		os.Exit(2)
	}
	if natsBoxes != "" || natsCert != "" {
		auth, err := natsAuth(natsBoxes, natsCert, natsKey)
		if err != nil {
			fmt.Fprintln(os.Stderr, "monitor:", err)
			os.Exit(2)
		}
		cfg.NATSAuth = auth
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		fmt.Fprintln(os.Stderr, "monitor: --tls-cert and --tls-key go together")
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

// natsAuth builds the embedded NATS server's box credentials and TLS.
func natsAuth(boxesFile, cert, key string) (*monitor.NATSAuth, error) {
	a := &monitor.NATSAuth{}
	if boxesFile != "" {
		f, err := os.Open(boxesFile)
		if err != nil {
			return nil, fmt.Errorf("--nats-boxes: %w", err)
		}
		defer f.Close()
		if a.Boxes, err = monitor.ParseBoxCredentials(f); err != nil {
			return nil, fmt.Errorf("--nats-boxes %s: %w", boxesFile, err)
		}
	}
	if (cert == "") != (key == "") {
		return nil, errors.New("--nats-tls-cert and --nats-tls-key go together")
	}
	if cert != "" {
		c, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("--nats-tls-cert/--nats-tls-key: %w", err)
		}
		a.TLS = &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}
	}
	return a, nil
}
