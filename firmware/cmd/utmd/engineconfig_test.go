package main

import (
	"log/slog"
	"testing"

	"github.com/openutm/utm/firmware/config"
)

// TestEngineConfigFromConfig: the config's engine section reaches the
// engine (file digests, file memory), not only its validation.
func TestEngineConfigFromConfig(t *testing.T) {
	var cfg config.Config
	cfg.Engine.FileHashes = []string{"md5", "sha256"}
	cfg.Engine.MaxScanTotal = 64 << 20
	cfg.Engine.BeaconIgnore = &[]string{"10.0.0.0/8"}
	ec := engineConfig(cfg, flags{}, nil, nil, slog.Default())
	if !ec.FileMD5 || ec.FileSHA1 || ec.MaxScanTotal != 64<<20 {
		t.Fatalf("engine config: FileMD5 %v FileSHA1 %v MaxScanTotal %d; want true false %d", ec.FileMD5, ec.FileSHA1, ec.MaxScanTotal, 64<<20)
	}
	if len(ec.BeaconIgnore) != 1 || ec.BeaconIgnore[0].Prefix.String() != "10.0.0.0/8" {
		t.Fatalf("engine config: BeaconIgnore %v, want [10.0.0.0/8]", ec.BeaconIgnore)
	}
}
