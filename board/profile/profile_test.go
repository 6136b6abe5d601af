package profile

import (
	"errors"
	"testing"
)

func TestLookup(t *testing.T) {
	p, err := Lookup("lab")
	if err != nil || p.LAN != "lan0" || p.WAN != "wan0" {
		t.Fatalf("lab: %+v %v", p, err)
	}
	if _, err := Lookup("nope"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown board: %v", err)
	}
}
