// Package bundle assembles what the engine matches with: rules, antivirus
// and threat intel. The default bundle is embedded in the binary, so a box
// inspects from its first boot with no file on disk; configured files are
// loaded on top of it.
//
// The embedded defaults (default/):
//
//	utm.rules  the box's own Suricata rules, sids 2200000-2209999, msg "UTM ...":
//	           Log4Shell (2200001 header, 2200002 URI, 2200003 body),
//	           path traversal, Shellshock
//	eicar.yar  YARA rule for the EICAR test file, threat "EICAR-Test-File"
//	cnc.list   C&C indicators, "indicator family" per line: the lab's
//	           cnc.utm-lab.test (family utm-lab-test) and a sample of
//	           maltrail static trails (MIT licence, see NOTICE)
//
// The classtype table (classification.config) is embedded in package rules,
// which needs it to parse any rule.
//
// Loading costs one parse of every file and one libyara compile; it runs at
// start and on signature updates, never on the packet path.
//
// A Bundle is immutable once built: the engine swaps whole bundles (an
// atomic pointer), which is how signed signature updates will hot-swap
// without dropping traffic in a later issue.
package bundle

import (
	"bytes"
	"embed"
	"fmt"
	"path"
	"time"

	"github.com/openutm/utm/signatures/av"
	"github.com/openutm/utm/signatures/intel"
	"github.com/openutm/utm/signatures/rules"
)

//go:embed default
var defaults embed.FS

// DefaultVersion names the embedded bundle.
const DefaultVersion = "default-2026.11.23"

// Bundle is one consistent set of signatures.
type Bundle struct {
	Version    string
	Rules      *rules.Set
	RuleErrors []rules.LoadError
	AV         *av.Scanner
	AVErrors   []av.LoadError
	Intel      *intel.Set
	IntelStats intel.Stats
	IntelFiles []IntelFile // what each configured file added (the default list is in IntelStats only)
	Loaded     time.Time
}

// IntelFile is what one threat-intel file contributed.
type IntelFile struct {
	Path  string
	Stats intel.Stats // Format, counts by kind, bad lines with examples
}

// Options adds files to the default bundle.
type Options struct {
	RuleFiles      []string
	NoDefaultRules bool // the rule files replace the default rules (utmd -S)
	YaraDirs       []string
	HashFiles      []string
	IntelFiles     []string
	Vars           rules.Vars
}

// Default returns the embedded bundle.
func Default() (*Bundle, error) { return Load(Options{}) }

// Load builds a bundle from the embedded defaults and opts. Rules that do
// not load are in RuleErrors; a file that cannot be read is an error.
func Load(opts Options) (*Bundle, error) {
	b := &Bundle{Version: DefaultVersion, Loaded: time.Now()}
	var sets []*rules.Set
	if !opts.NoDefaultRules {
		src, err := defaults.ReadFile("default/utm.rules")
		if err != nil {
			return nil, err
		}
		s, errs := rules.Parse(bytes.NewReader(src), "default/utm.rules", opts.Vars)
		sets = append(sets, s)
		b.RuleErrors = append(b.RuleErrors, errs...)
	}
	for _, f := range opts.RuleFiles {
		s, errs, err := rules.ParseFile(f, opts.Vars)
		if err != nil {
			return nil, fmt.Errorf("bundle: %w (check signatures.rule_files or -S)", err)
		}
		sets = append(sets, s)
		b.RuleErrors = append(b.RuleErrors, errs...)
		b.Version += "+" + path.Base(f)
	}
	b.Rules = rules.Merge(sets...)

	yar, err := defaults.ReadFile("default/eicar.yar")
	if err != nil {
		return nil, err
	}
	b.AV, err = av.New(av.Options{
		YaraSources: map[string][]byte{"default/eicar.yar": yar},
		YaraDirs:    opts.YaraDirs,
		HashFiles:   opts.HashFiles,
	})
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	b.AVErrors = b.AV.LoadErrors

	list, err := defaults.ReadFile("default/cnc.list")
	if err != nil {
		return nil, err
	}
	in, st := intel.Parse(bytes.NewReader(list), "utm-default")
	all := []*intel.Set{in}
	b.IntelStats = st
	for _, f := range opts.IntelFiles {
		s, st, err := intel.ParseFile(f)
		if err != nil {
			return nil, fmt.Errorf("bundle: %w (check signatures.intel_files)", err)
		}
		all = append(all, s)
		b.IntelStats.Add(st)
		b.IntelFiles = append(b.IntelFiles, IntelFile{Path: f, Stats: st})
	}
	if len(all) == 1 {
		b.Intel = in
	} else {
		b.Intel = intel.Merge(all...)
	}
	return b, nil
}
