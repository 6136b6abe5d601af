package profile

import (
	"errors"
	"fmt"
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

func TestQueueNums(t *testing.T) {
	for _, tc := range []struct {
		p    Profile
		want string
	}{
		{Profile{Queue: 0}, "[0]"},
		{Profile{Queue: 5, Queues: 1}, "[5]"},
		{Profile{Queue: 2, Queues: 3}, "[2 3 4]"},
	} {
		if got := fmt.Sprint(tc.p.QueueNums()); got != tc.want {
			t.Errorf("Queue %d Queues %d: QueueNums %s, want %s", tc.p.Queue, tc.p.Queues, got, tc.want)
		}
	}
}
