package monitor

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/openutm/utm/telemetry/alert"
)

// ErrNATSAuth is returned (wrapped) for box credentials or TLS settings
// the embedded NATS server cannot use.
var ErrNATSAuth = errors.New("monitor: bad NATS credentials")

// BoxCredential is one box's NATS identity: its box id and the public half
// of its NKEY, a user key ("U..."). The box keeps the seed ("SU...") in its
// seed file (uplink.Config.NKeySeedFile); `nk -gen user -pubout` makes a
// pair.
type BoxCredential struct {
	BoxID      string
	NKeyPublic string
}

// NATSAuth locks the embedded NATS server down to known boxes.
//
// Each box is an NKEY user that may publish only its own alerts
// (utm.alerts.<box>) and heartbeats (utm.heartbeat.<box>) and subscribe
// only to its own reply inbox (alert.InboxPrefix(box)+".>", where
// JetStream's publish acks arrive): it cannot publish as another box, read
// another box's alerts or heartbeats, or call the JetStream API. The
// monitor connects as one more NKEY user, made fresh at every start, with
// every permission. Nobody else may connect.
//
// With TLS set, every client must use TLS (a plaintext connection is
// refused); the monitor's own connection pins the server's certificate.
type NATSAuth struct {
	Boxes []BoxCredential
	// TLS is the server's TLS configuration (its certificate in
	// Certificates[0]); nil: plaintext, for a LAN or a lab only.
	TLS *tls.Config

	monitor nkeys.KeyPair
}

// BoxPermissions are what box may do on the monitor's NATS.
func BoxPermissions(box string) *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{alert.AlertSubject(box), alert.HeartbeatSubject(box)}},
		Subscribe: &server.SubjectPermission{Allow: []string{alert.InboxPrefix(box) + ".>"}},
	}
}

// Configure adds the box users, the monitor's user and the TLS settings
// to the embedded server's options. Call it once per server start, before
// server.NewServer, then connect with ClientOptions.
func (a *NATSAuth) Configure(opts *server.Options) error {
	seen := map[string]bool{}
	users := make([]*server.NkeyUser, 0, len(a.Boxes)+1)
	for _, b := range a.Boxes {
		if b.BoxID == "" || strings.ContainsAny(b.BoxID, ".*> \t\r\n") {
			return fmt.Errorf("%w: box id %q must be non-empty without dots, spaces, '*' or '>'", ErrNATSAuth, b.BoxID)
		}
		if !nkeys.IsValidPublicUserKey(b.NKeyPublic) {
			return fmt.Errorf("%w: box %s: %q is not an NKEY user public key (it starts with U; give the public key, never the seed)", ErrNATSAuth, b.BoxID, b.NKeyPublic)
		}
		if seen[b.BoxID] || seen[b.NKeyPublic] {
			return fmt.Errorf("%w: box %s or its key is listed twice; each box needs its own key", ErrNATSAuth, b.BoxID)
		}
		seen[b.BoxID], seen[b.NKeyPublic] = true, true
		users = append(users, &server.NkeyUser{Nkey: b.NKeyPublic, Permissions: BoxPermissions(b.BoxID)})
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return fmt.Errorf("%w: monitor key: %w", ErrNATSAuth, err)
	}
	pub, _ := kp.PublicKey()
	a.monitor = kp
	opts.Nkeys = append(users, &server.NkeyUser{Nkey: pub})
	if a.TLS != nil {
		if len(a.TLS.Certificates) == 0 || len(a.TLS.Certificates[0].Certificate) == 0 {
			return fmt.Errorf("%w: the TLS configuration has no certificate (give --nats-tls-cert and --nats-tls-key)", ErrNATSAuth)
		}
		opts.TLSConfig = a.TLS
		opts.TLS = true
		opts.AllowNonTLS = false
		opts.TLSTimeout = 5
	}
	return nil
}

// ClientOptions are the monitor's own connection's credentials (and TLS,
// pinned to the server's certificate). Configure must have run.
func (a *NATSAuth) ClientOptions() []nats.Option {
	if a == nil || a.monitor == nil {
		return nil
	}
	kp := a.monitor
	pub, _ := kp.PublicKey()
	opts := []nats.Option{nats.Nkey(pub, kp.Sign)}
	if a.TLS != nil {
		leaf := a.TLS.Certificates[0].Certificate[0]
		opts = append(opts, nats.Secure(&tls.Config{
			MinVersion: tls.VersionTLS12,
			// The monitor talks to its own server: the certificate is
			// compared byte for byte instead of verified by name.
			InsecureSkipVerify: true,
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				if len(raw) == 0 || !bytes.Equal(raw[0], leaf) {
					return fmt.Errorf("%w: the NATS server's certificate is not the monitor's own", ErrNATSAuth)
				}
				return nil
			},
		}))
	}
	return opts
}

// ParseBoxCredentials reads box credentials, one "BOX-ID NKEY-PUBLIC" pair
// per line; blank lines and lines starting with # are skipped. Errors
// name the line.
func ParseBoxCredentials(r io.Reader) ([]BoxCredential, error) {
	var out []BoxCredential
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("%w: line %d: want \"BOX-ID NKEY-PUBLIC\", got %d fields", ErrNATSAuth, n, len(f))
		}
		if !nkeys.IsValidPublicUserKey(f[1]) {
			return nil, fmt.Errorf("%w: line %d: box %s: not an NKEY user public key (it starts with U)", ErrNATSAuth, n, f[0])
		}
		out = append(out, BoxCredential{BoxID: f[0], NKeyPublic: f[1]})
	}
	return out, sc.Err()
}
