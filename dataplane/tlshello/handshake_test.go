package tlshello

import (
	"crypto/tls"
	"sync"
	"testing"

	"github.com/openutm/utm/dataplane/internal/tlstest"
)

type recorded = tlstest.Handshake

var (
	recOnce      sync.Once
	rec12, rec13 recorded
)

// recordings returns a TLS 1.2 and a TLS 1.3 handshake to "bad.example".
func recordings(t testing.TB) (recorded, recorded) {
	recOnce.Do(func() {
		rec12 = tlstest.Record(t, tls.VersionTLS12, "bad.example")
		rec13 = tlstest.Record(t, tls.VersionTLS13, "bad.example")
	})
	return rec12, rec13
}
