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
	"net/netip"
	"os"
	"time"

	"github.com/openutm/utm/dataplane/beacon"
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
	BoxID   string `json:"box_id"`
	Board   string `json:"board"`    // board profile name, e.g. "lab"
	Queue   int    `json:"queue"`    // NFQUEUE number; -1 takes the board's
	Steer   bool   `json:"steer"`    // install the steering rules
	DataDir string `json:"data_dir"` // spool, state
	LogDir  string `json:"log_dir"`  // eve.json
	NATSURL string `json:"nats_url"` // the monitor's NATS
	// NATSNKeyFile is this box's NKEY seed file (the monitor lists its
	// public key in --nats-boxes); NATSCAFile the CA that signed the
	// monitor's NATS certificate (the connection then requires TLS).
	NATSNKeyFile string   `json:"nats_nkey_file,omitempty"`
	NATSCAFile   string   `json:"nats_ca_file,omitempty"`
	Heartbeat    Duration `json:"heartbeat"` // heartbeat period
	Spool        int      `json:"spool_max"` // alerts kept while the monitor is unreachable

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
	MaxFlows    int `json:"max_flows"`
	MaxScanSize int `json:"max_scan_size"`
	// MaxScanTotal bounds the bytes of all files held for scanning at
	// once, idle file buffers included, box-wide (0: 256 MiB). Past it a
	// file is scanned as far as it was kept and reported partially
	// scanned. Size it to the board's memory: a 1 GiB board does well
	// with 128 MiB.
	MaxScanTotal    int64 `json:"max_scan_total,omitempty"`
	MalformedAccept bool  `json:"malformed_accept"`
	// BlockUnscannable rejects files the antivirus cannot look into
	// (decompression bombs, encrypted archive members); by default they
	// pass with a ★★ "unscannable" alert.
	BlockUnscannable bool `json:"block_unscannable,omitempty"`
	// IntelBlockConfidence is the indicator confidence (1-100) from which a
	// threat-intel hit blocks and rates ★★★; below it ★★, allowed. 0: 70.
	IntelBlockConfidence int `json:"intel_block_confidence,omitempty"`
	// DNSBlock is what a DNS query for a domain on the threat-intel list
	// gets: "alert" (let through, ★★; the connection to the address is
	// blocked, ★★★), "nxdomain" (answered NXDOMAIN by the box, ★★★) or
	// "sinkhole" (answered with Sinkhole4/Sinkhole6, ★★★). "" = "alert".
	DNSBlock  string `json:"dns_block,omitempty"`
	Sinkhole4 string `json:"sinkhole4,omitempty"`
	Sinkhole6 string `json:"sinkhole6,omitempty"`
	// FileHashes are the digests computed for every file and reported in
	// fileinfo events: "md5", "sha1", "sha256". SHA-256 is always computed
	// (alerts, the blocked-file table); MD5 and SHA-1 cost a pass over
	// every file each, so by default (empty) a file gets them only when a
	// rule (filemd5, filesha1) or a hash list of that kind needs them.
	FileHashes []string `json:"file_hashes,omitempty"`
	// BeaconIgnore lists destinations whose periodic connections are not
	// reported as beaconing: "10.0.0.0/8", "198.18.2.25", "203.0.113.7:443"
	// or ":993". Absent: the mail polling ports (110, 995, 143, 993); an
	// empty list ignores nothing.
	BeaconIgnore *[]string `json:"beacon_ignore,omitempty"`
}

// BeaconIgnores parses BeaconIgnore; nil means the engine's default.
func (e Engine) BeaconIgnores() ([]beacon.Ignore, error) {
	if e.BeaconIgnore == nil {
		return nil, nil
	}
	out := []beacon.Ignore{}
	for _, s := range *e.BeaconIgnore {
		ig, err := beacon.ParseIgnore(s)
		if err != nil {
			return nil, fmt.Errorf("%w: engine.beacon_ignore: %v", ErrInvalid, err)
		}
		out = append(out, ig)
	}
	return out, nil
}

// FileDigests parses FileHashes: whether every file gets an MD5 and a
// SHA-1 (SHA-256 it always gets).
func (e Engine) FileDigests() (md5, sha1 bool, err error) {
	for _, h := range e.FileHashes {
		switch h {
		case "md5":
			md5 = true
		case "sha1":
			sha1 = true
		case "sha256":
		default:
			return false, false, fmt.Errorf("%w: engine.file_hashes: %q: want md5, sha1 or sha256", ErrInvalid, h)
		}
	}
	return md5, sha1, nil
}

// DNSPolicy parses DNSBlock and the sinkhole addresses.
func (e Engine) DNSPolicy() (policy string, sink4, sink6 netip.Addr, err error) {
	switch e.DNSBlock {
	case "", "alert":
		return "alert", sink4, sink6, nil
	case "nxdomain":
		return e.DNSBlock, sink4, sink6, nil
	case "sinkhole":
	default:
		return "", sink4, sink6, fmt.Errorf("%w: engine.dns_block %q: want alert, nxdomain or sinkhole", ErrInvalid, e.DNSBlock)
	}
	if e.Sinkhole4 != "" {
		if sink4, err = netip.ParseAddr(e.Sinkhole4); err != nil || !sink4.Is4() {
			return "", sink4, sink6, fmt.Errorf("%w: engine.sinkhole4 %q is not an IPv4 address", ErrInvalid, e.Sinkhole4)
		}
	}
	if e.Sinkhole6 != "" {
		if sink6, err = netip.ParseAddr(e.Sinkhole6); err != nil || !sink6.Is6() || sink6.Is4In6() {
			return "", sink4, sink6, fmt.Errorf("%w: engine.sinkhole6 %q is not an IPv6 address", ErrInvalid, e.Sinkhole6)
		}
	}
	if !sink4.IsValid() && !sink6.IsValid() {
		return "", sink4, sink6, fmt.Errorf("%w: engine.dns_block is sinkhole but neither sinkhole4 nor sinkhole6 is set", ErrInvalid)
	}
	return e.DNSBlock, sink4, sink6, nil
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
	if n := c.Engine.IntelBlockConfidence; n < 0 || n > 100 {
		return fmt.Errorf("%w: engine.intel_block_confidence %d: want 1..100 (0 for the default 70)", ErrInvalid, n)
	}
	if _, _, _, err := c.Engine.DNSPolicy(); err != nil {
		return err
	}
	if _, _, err := c.Engine.FileDigests(); err != nil {
		return err
	}
	if _, err := c.Engine.BeaconIgnores(); err != nil {
		return err
	}
	if t := c.Engine.MaxScanTotal; t != 0 && t < int64(c.Engine.MaxScanSize) {
		return fmt.Errorf("%w: engine.max_scan_total %d is below max_scan_size %d: not even one file could be kept whole (0 for the default 256 MiB)", ErrInvalid, t, c.Engine.MaxScanSize)
	}
	for sid, n := range c.Stars {
		if sid <= 0 || n < 1 || n > 3 {
			return fmt.Errorf("%w: stars: sid %d -> %d: want a positive sid and 1, 2 or 3 stars", ErrInvalid, sid, n)
		}
	}
	return nil
}
