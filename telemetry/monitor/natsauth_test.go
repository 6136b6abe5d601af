package monitor

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

func userKey(t *testing.T) (pub, seed string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := kp.PublicKey()
	s, _ := kp.Seed()
	return p, string(s)
}

func TestParseBoxCredentials(t *testing.T) {
	a, _ := userKey(t)
	b, seed := userKey(t)
	got, err := ParseBoxCredentials(strings.NewReader("# boxes\n\nbox-a " + a + "\n  box-b\t" + b + "  \n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != (BoxCredential{"box-a", a}) || got[1] != (BoxCredential{"box-b", b}) {
		t.Fatalf("got %+v", got)
	}
	for name, in := range map[string]string{
		"seed instead of public key": "box-a " + seed,
		"one field":                  "box-a",
		"three fields":               "box-a " + a + " x",
	} {
		_, err := ParseBoxCredentials(strings.NewReader("# x\n" + in + "\n"))
		if !errors.Is(err, ErrNATSAuth) || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%s: %v, want ErrNATSAuth naming line 2", name, err)
		}
		if err != nil && strings.Contains(err.Error(), seed) {
			t.Errorf("%s: the error repeats the seed", name)
		}
	}
}

func TestNATSAuthConfigure(t *testing.T) {
	a, _ := userKey(t)
	b, _ := userKey(t)
	for name, na := range map[string]*NATSAuth{
		"dotted box":      {Boxes: []BoxCredential{{"box.a", a}}},
		"bad key":         {Boxes: []BoxCredential{{"box-a", "UNOTAKEY"}}},
		"box twice":       {Boxes: []BoxCredential{{"box-a", a}, {"box-a", b}}},
		"key twice":       {Boxes: []BoxCredential{{"box-a", a}, {"box-b", a}}},
		"TLS without key": {Boxes: []BoxCredential{{"box-a", a}}, TLS: &tls.Config{}},
	} {
		if err := na.Configure(&server.Options{}); !errors.Is(err, ErrNATSAuth) {
			t.Errorf("%s: %v, want ErrNATSAuth", name, err)
		}
	}
	na := &NATSAuth{Boxes: []BoxCredential{{"box-a", a}, {"box-b", b}}}
	opts := &server.Options{}
	if err := na.Configure(opts); err != nil {
		t.Fatal(err)
	}
	if len(opts.Nkeys) != 3 || opts.Nkeys[2].Permissions != nil || len(na.ClientOptions()) != 1 {
		t.Fatalf("want the two boxes and the monitor's unrestricted user: %+v", opts.Nkeys)
	}
	p := opts.Nkeys[0].Permissions
	if strings.Join(p.Publish.Allow, " ") != "utm.alerts.box-a utm.heartbeat.box-a" || strings.Join(p.Subscribe.Allow, " ") != "_INBOX_box-a.>" {
		t.Fatalf("box-a may publish %v and subscribe %v", p.Publish.Allow, p.Subscribe.Allow)
	}
}
