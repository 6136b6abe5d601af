package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Board != "lab" || time.Duration(c.Heartbeat) != 2*time.Second {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

func TestLoadOverridesAndRejectsTypos(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"box_id":"office-7","heartbeat":"5s"}`), 0o600)
	c, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	if c.BoxID != "office-7" || time.Duration(c.Heartbeat) != 5*time.Second || c.Board != "lab" {
		t.Fatalf("override failed: %+v", c)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"box_idd":"x"}`), 0o600)
	if _, err := Load(bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("typo: err = %v, want ErrInvalid", err)
	}
	zero := filepath.Join(dir, "zero.json")
	os.WriteFile(zero, []byte(`{"heartbeat":"1ms"}`), 0o600)
	if _, err := Load(zero); !errors.Is(err, ErrInvalid) {
		t.Fatalf("tiny heartbeat: err = %v, want ErrInvalid", err)
	}
}
