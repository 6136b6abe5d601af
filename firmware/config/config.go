// Package config is the box's configuration: embedded defaults that run the
// lab with no file at all, overridden field by field by an optional JSON
// file and then by command-line flags.
//
// Later issues add the firmware-update schedule and signature-bundle
// sources here; unknown fields in a file are rejected so a typo is caught at
// start, not ignored.
package config

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

//go:embed default.json
var defaultJSON []byte

// ErrInvalid is returned (wrapped) when a configuration value is out of
// range or a file does not parse.
var ErrInvalid = errors.New("config: invalid configuration")

// Duration is a time.Duration that reads and writes as "2s".
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Config is the whole configuration of a box.
type Config struct {
	BoxID     string   `json:"box_id"`
	Board     string   `json:"board"`     // board profile name, e.g. "lab"
	Queue     int      `json:"queue"`     // NFQUEUE number; -1 takes the board's
	Steer     bool     `json:"steer"`     // install the steering rules
	DataDir   string   `json:"data_dir"`  // spool, state
	LogDir    string   `json:"log_dir"`   // eve.json
	NATSURL   string   `json:"nats_url"`  // the monitor's NATS
	Heartbeat Duration `json:"heartbeat"` // heartbeat period
	Spool     int      `json:"spool_max"` // alerts kept while the monitor is unreachable

	Signatures Signatures `json:"signatures"`
	Engine     Engine     `json:"engine"`

	// Stars overrides the ★ rating (1..3) of alerts by signature id, e.g.
	// "stars": {"2019401": 3, "2210001": 2}. Without an entry a rule's
	// classtype, signature_severity and priority decide (README, "Stars").
	Stars map[int]int `json:"stars,omitempty"`
}

// Signatures names rule, YARA, hash and intel files loaded on top of the
// embedded default bundle.
type Signatures struct {
	RuleFiles      []string `json:"rule_files"`
	NoDefaultRules bool     `json:"no_default_rules"`
	YaraDirs       []string `json:"yara_dirs"`
	HashFiles      []string `json:"hash_files"`
	IntelFiles     []string `json:"intel_files"`
}

// Engine holds the inspection limits.
type Engine struct {
	MaxFlows        int  `json:"max_flows"`
	MaxScanSize     int  `json:"max_scan_size"`
	MalformedAccept bool `json:"malformed_accept"`
}

// Default returns the embedded defaults.
func Default() Config {
	var c Config
	if err := decode(defaultJSON, &c); err != nil {
		panic("config: embedded default.json is broken: " + err.Error())
	}
	return c
}

// Load returns the defaults overridden by the JSON file at path ("" for
// none).
func Load(path string) (Config, error) {
	c := Default()
	if path == "" {
		return c, c.Validate()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("config: read %s: %w", path, err)
	}
	if err := decode(b, &c); err != nil {
		return c, fmt.Errorf("%w: %s: %v (fix the file or remove the field to take the default)", ErrInvalid, path, err)
	}
	return c, c.Validate()
}

func decode(b []byte, c *Config) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode(c)
}

// Validate checks ranges.
func (c Config) Validate() error {
	switch {
	case c.BoxID == "":
		return fmt.Errorf("%w: box_id is empty", ErrInvalid)
	case c.Queue < -1 || c.Queue > 65535:
		return fmt.Errorf("%w: queue %d is not -1..65535", ErrInvalid, c.Queue)
	case time.Duration(c.Heartbeat) < 100*time.Millisecond:
		return fmt.Errorf("%w: heartbeat %v is shorter than 100ms", ErrInvalid, time.Duration(c.Heartbeat))
	case c.DataDir == "" || c.LogDir == "":
		return fmt.Errorf("%w: data_dir and log_dir must be set", ErrInvalid)
	}
	for sid, n := range c.Stars {
		if sid <= 0 || n < 1 || n > 3 {
			return fmt.Errorf("%w: stars: sid %d -> %d: want a positive sid and 1, 2 or 3 stars", ErrInvalid, sid, n)
		}
	}
	return nil
}
